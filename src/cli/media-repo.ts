#!/usr/bin/env node
// media-repo serve | migrate | keys list | storage sweep | storage check | storage transfer  [-config FILE]
import { existsSync } from 'node:fs';
import { buildConfig, loadConfigFile, readSecret, type Config } from '../config/config.js';
import { migrateToLatest, openDatabase } from '../db/database.js';
import { closeServices, openServices, startService } from '../service.js';
import { createLogger } from '../log.js';
import { checkStorageFlags, runStorageCommand } from './storage-commands.js';
import { formatUsage, parseFlags, runAsMain, runTool, UsageError, type CliIo, type FlagSpec } from './args.js';

const PROGRAM = 'media-repo';
const SYNOPSIS = '[flags] serve | migrate | keys list | storage sweep | storage check | storage transfer -from A -to B [-kind K] [-homeserver H]';
const FLAGS: FlagSpec[] = [
  { name: 'config', usage: 'The YAML config file (default: config.yaml here, else built-in defaults)', defaultValue: process.env.MEDIA_REPO_CONFIG ?? '' },
  { name: 'from', usage: 'storage transfer: the datastore id to move blobs out of', defaultValue: '' },
  { name: 'to', usage: 'storage transfer: the datastore id to move them into', defaultValue: '' },
  { name: 'kind', usage: 'storage transfer: only local_media, remote_media or thumbnails', defaultValue: '' },
  { name: 'homeserver', usage: "storage transfer: only this hosted homeserver's local media and thumbnails", defaultValue: '' },
  { name: 'staging-age-hours', usage: 'storage sweep: remove staging leftovers older than this', defaultValue: '24' },
];
const COMMANDS = ['serve', 'migrate', 'keys list', 'storage sweep', 'storage check', 'storage transfer'];

export async function run(argv: string[], io: CliIo = process): Promise<number> {
  let command = '';
  const parse = () => {
    const parsed = parseFlags(argv, FLAGS);
    if (parsed === 'help') return parsed;
    command = parsed.positionals.join(' ') || 'serve';
    if (!COMMANDS.includes(command)) throw new UsageError(`unknown command "${command}"`);
    const flag = (name: string) => parsed.flags.get(name)!;
    const storageFlags = { from: flag('from'), to: flag('to'), kind: flag('kind'), homeserver: flag('homeserver'), stagingAgeHours: flag('staging-age-hours') };
    checkStorageFlags(command, storageFlags);
    return { configFile: flag('config'), storageFlags };
  };
  return runTool(io, formatUsage(PROGRAM, SYNOPSIS, FLAGS), parse, async ({ configFile, storageFlags }) => {
    const config = loadConfig(configFile, io);
    if (command === 'serve') await serve(config);
    else if (command === 'migrate') await migrate(config, io);
    else if (command === 'keys list') await listKeys(config, io);
    else await runStorageCommand(command, config, storageFlags, io);
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
      for (const old of own.filter((k) => k.expiredTs !== null)) {
        io.stdout.write(`  expired:    ${old.keyId} ${old.publicKey} at ${new Date(old.expiredTs!).toISOString()}\n`);
      }
    }
  } finally {
    await closeServices(services);
  }
}

runAsMain(import.meta.url, run);
