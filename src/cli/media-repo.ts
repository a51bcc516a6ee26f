#!/usr/bin/env node
// media-repo serve | migrate | keys list  [-config FILE]
import { existsSync } from 'node:fs';
import { buildConfig, loadConfigFile, readSecret, type Config } from '../config/config.js';
import { migrateToLatest, openDatabase } from '../db/database.js';
import { openContext, startService } from '../service.js';
import { createLogger } from '../log.js';
import { runAsMain, type CliIo } from './args.js';

const USAGE = 'usage: media-repo [-config FILE] serve | migrate | keys list';

export async function run(argv: string[], io: CliIo = process): Promise<number> {
  const positional: string[] = [];
  let configFile = process.env.MEDIA_REPO_CONFIG;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const flag = /^--?config(?:=(.*))?$/.exec(arg);
    if (flag) {
      configFile = flag[1] ?? argv[++i];
      if (!configFile) return usageError(io, 'missing value for -config');
    } else if (arg.startsWith('-')) {
      return usageError(io, `unknown flag ${arg}`);
    } else {
      positional.push(arg);
    }
  }
  let config: Config;
  try {
    config = loadConfig(configFile, io);
  } catch (error) {
    io.stderr.write(`media-repo: ${(error as Error).message}\n`);
    return 2;
  }
  const command = positional.join(' ');
  try {
    if (command === 'serve' || command === '') return await serve(config);
    if (command === 'migrate') return await migrate(config, io);
    if (command === 'keys list') return await listKeys(config, io);
  } catch (error) {
    io.stderr.write(`media-repo: ${(error as Error).message}\n`);
    return 1;
  }
  return usageError(io, `unknown command "${command}"`);
}

function loadConfig(file: string | undefined, io: CliIo): Config {
  if (file) return loadConfigFile(file);
  if (existsSync('config.yaml')) return loadConfigFile('config.yaml');
  io.stderr.write('media-repo: no config.yaml here and no -config given: running on built-in defaults (no homeservers, embedded database in ./data)\n');
  return buildConfig({});
}

async function serve(config: Config): Promise<number> {
  const log = createLogger(config.logLevel);
  const service = await startService(config, log);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  log.info('shutting down');
  await service.close();
  return 0;
}

async function migrate(config: Config, io: CliIo): Promise<number> {
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
  return 0;
}

async function listKeys(config: Config, io: CliIo): Promise<number> {
  const context = await openContext(config, createLogger('warn', io.stderr));
  try {
    const keys = await context.signingKeys.list();
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
    await context.db.close();
  }
  return 0;
}

function usageError(io: CliIo, message: string): number {
  io.stderr.write(`media-repo: ${message}\n${USAGE}\n`);
  return 2;
}

runAsMain(import.meta.url, run);
