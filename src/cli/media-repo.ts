#!/usr/bin/env node
// media-repo serve | migrate | keys list | storage sweep  [-config FILE]
import { existsSync } from 'node:fs';
import { buildConfig, loadConfigFile, readSecret, type Config } from '../config/config.js';
import { migrateToLatest, openDatabase } from '../db/database.js';
import { closeServices, openServices, startService } from '../service.js';
import { createLogger } from '../log.js';
import { formatUsage, parseFlags, runAsMain, runTool, UsageError, type CliIo, type FlagSpec } from './args.js';

const PROGRAM = 'media-repo';
const SYNOPSIS = '[flags] serve | migrate | keys list | storage sweep';
const FLAGS: FlagSpec[] = [
  { name: 'config', usage: 'The YAML config file (default: config.yaml here, else built-in defaults)', defaultValue: process.env.MEDIA_REPO_CONFIG ?? '' },
];

export async function run(argv: string[], io: CliIo = process): Promise<number> {
  let command = '';
  const parse = () => {
    const parsed = parseFlags(argv, FLAGS);
    if (parsed === 'help') return parsed;
    command = parsed.positionals.join(' ') || 'serve';
    if (!['serve', 'migrate', 'keys list', 'storage sweep'].includes(command)) throw new UsageError(`unknown command "${command}"`);
    return parsed.flags.get('config')!;
  };
  return runTool(io, formatUsage(PROGRAM, SYNOPSIS, FLAGS), parse, async (configFile) => {
    const config = loadConfig(configFile, io);
    if (command === 'serve') await serve(config);
    else if (command === 'migrate') await migrate(config, io);
    else if (command === 'keys list') await listKeys(config, io);
    else await sweepStorage(config, io);
  });
}

function loadConfig(file: string, io: CliIo): Config {
  if (file) return loadConfigFile(file);
  if (existsSync('config.yaml')) return loadConfigFile('config.yaml');
  io.stderr.write('media-repo: no config.yaml here and no -config given: running on built-in defaults (no homeservers, embedded database in ./data)\n');
  return buildConfig({});
}

async function serve(config: Config): Promise<void> {
  const log = createLogger(config.logLevel);
  const service = await startService(config, log);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  log.info('shutting down');
  await service.close();
}

async function migrate(config: Config, io: CliIo): Promise<void> {
  const db = await openDatabase({
    url: config.database.url === undefined ? undefined : readSecret(config.database.url, 'database.url'),
    dataDir: config.dataDir,
    poolMax: 1,
  });
  try {
    const applied = await migrateToLatest(db.knex);
    io.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'already up to date\n');
  } finally {
    await db.close();
  }
}

async function listKeys(config: Config, io: CliIo): Promise<void> {
  const services = await openServices(config, createLogger('warn', io.stderr));
  try {
    const keys = await services.signingKeys.list();
    await services.authSchemes.refreshAll();
    for (const hs of config.homeservers) {
      const own = keys.filter((k) => k.serverName === hs.name);
      const active = own.find((k) => k.expiredTs === null);
      io.stdout.write(`${hs.name}\n`);
      if (!active) {
        io.stdout.write('  no signing key\n');
        continue;
      }
      io.stdout.write(`  key ID:     ${active.keyId}\n  public key: ${active.publicKey}\n  scope:      ${active.scope.join(', ')}\n`);
      // What the homeserver publishes at /_matrix/key/unstable/org.matrix.msc4100/server for this key.
      const fragment = { verify_keys: { [active.keyId]: { key: active.publicKey, scope: active.scope } } };
      io.stdout.write(`  verify_keys: ${JSON.stringify(fragment.verify_keys)}\n`);
      const scheme = services.authSchemes.describe(hs.name);
      if (scheme) io.stdout.write(`  outbound:   ${scheme.scheme} (${scheme.reason})\n`);
      for (const old of own.filter((k) => k.expiredTs !== null)) {
        io.stdout.write(`  expired:    ${old.keyId} ${old.publicKey} at ${new Date(old.expiredTs!).toISOString()}\n`);
      }
    }
  } finally {
    await closeServices(services);
  }
}

/** Deletes stored files no media or thumbnail row points at (left by a crash between the two writes). */
async function sweepStorage(config: Config, io: CliIo): Promise<void> {
  const services = await openServices(config, createLogger('warn', io.stderr));
  try {
    const { checked, deleted } = await services.blobs.sweepUnreferenced();
    io.stdout.write(`checked ${checked} stored files, deleted ${deleted} that nothing referenced\n`);
  } finally {
    await closeServices(services);
  }
}

runAsMain(import.meta.url, run);
