#!/usr/bin/env node
// media-repo serve | migrate | keys list | storage sweep|check|transfer | doctor | admin ...  [-config FILE] [-json]
import { existsSync } from 'node:fs';
import { loadConfigFile, readSecret, type Config } from '../config/config.js';
import { migrateToLatest, openDatabase } from '../db/database.js';
import { closeServices, openServices, startService } from '../service.js';
import { createLogger } from '../log.js';
import { runAdmin } from './admin.js';
import { checkStorageFlags, runStorageCommand } from './storage-commands.js';
import { formatUsage, parseFlags, runAsMain, runTool, UsageError, type CliIo, type FlagSpec } from './args.js';
import { doctor } from './doctor.js';
import { prepareTrial } from './trial.js';

const PROGRAM = 'media-repo';
const SYNOPSIS = '[flags] serve | migrate | keys list | storage sweep | storage check [-quick] [-json] | storage transfer -from A -to B [-kind K] [-homeserver H] | doctor | admin (see media-repo admin -help)';
const FLAGS: FlagSpec[] = [
  { name: 'config', usage: 'The YAML config file (default: config.yaml here, else the trial homeserver)', defaultValue: process.env.MEDIA_REPO_CONFIG ?? '' },
  { name: 'json', usage: 'doctor, storage check: print the checks as JSON', defaultValue: 'false', boolean: true },
  { name: 'quick', usage: 'storage check: only check that each blob exists, without reading it for its size and sha256', defaultValue: 'false', boolean: true },
  { name: 'from', usage: 'storage transfer: the datastore id to move blobs out of', defaultValue: '' },
  { name: 'to', usage: 'storage transfer: the datastore id to move them into', defaultValue: '' },
  { name: 'kind', usage: 'storage transfer: only local_media, remote_media or thumbnails', defaultValue: '' },
  { name: 'homeserver', usage: "storage transfer: only this hosted homeserver's local media and thumbnails", defaultValue: '' },
  { name: 'staging-age-hours', usage: 'storage sweep: also remove staging named by no instance (left by versions before 010_instances) older than this', defaultValue: '24' },
];
const COMMANDS = ['serve', 'migrate', 'keys list', 'storage sweep', 'storage check', 'storage transfer', 'doctor'];
/** How long SIGTERM and SIGINT let requests in flight finish. */
const DRAIN_MS = 10_000;

export async function run(argv: string[], io: CliIo = process): Promise<number> {
  // The admin commands take flags of their own.
  const first = firstPositional(argv);
  if (first !== undefined && argv[first] === 'admin') return runAdmin(argv.filter((_, i) => i !== first), io);
  let command = '';
  let json = false;
  const parse = () => {
    const parsed = parseFlags(argv, FLAGS);
    if (parsed === 'help') return parsed;
    command = parsed.positionals.join(' ') || 'serve';
    if (!COMMANDS.includes(command)) throw new UsageError(`unknown command "${command}"`);
    const flag = (name: string) => parsed.flags.get(name)!;
    const bool = (name: string) => {
      if (!['true', 'false'].includes(flag(name))) throw new UsageError(`invalid boolean value "${flag(name)}" for -${name}`);
      return flag(name) === 'true';
    };
    json = bool('json');
    const storageFlags = {
      from: flag('from'), to: flag('to'), kind: flag('kind'), homeserver: flag('homeserver'), stagingAgeHours: flag('staging-age-hours'), quick: bool('quick'), json,
    };
    checkStorageFlags(command, storageFlags);
    return { configFile: flag('config'), storageFlags };
  };
  return runTool(io, formatUsage(PROGRAM, SYNOPSIS, FLAGS), parse, async ({ configFile, storageFlags }) => {
    const { config, instructions } = await loadConfig(configFile);
    if (command === 'serve') await serve(config, io, instructions);
    else if (command === 'migrate') await migrate(config, io);
    else if (command === 'keys list') await listKeys(config, io);
    else if (command === 'doctor') {
      if (!(await doctor(config, io, { json }))) throw new Error('doctor: some checks failed (see above)');
    } else await runStorageCommand(command, config, storageFlags, io);
  });
}

/** Index of the first argument that is not a flag nor a flag's value. */
function firstPositional(argv: string[]): number | undefined {
  for (let i = 0; i < argv.length; i++) {
    if (/^--?config$/.test(argv[i]!)) i++;
    else if (!argv[i]!.startsWith('-')) return i;
  }
  return undefined;
}

/** The config file; without one, the trial homeserver (and what to tell its user). */
async function loadConfig(file: string): Promise<{ config: Config; instructions?: string }> {
  if (file) return { config: loadConfigFile(file) };
  if (existsSync('config.yaml')) return { config: loadConfigFile('config.yaml') };
  return prepareTrial();
}

async function serve(config: Config, io: CliIo, instructions?: string): Promise<void> {
  const log = createLogger(config.logLevel);
  const stopped = new Promise<string>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  const service = await startService(config, log);
  if (instructions) io.stdout.write(instructions);
  const signal = await stopped;
  log.info({ signal, drainMs: DRAIN_MS }, 'shutting down: finishing requests in flight');
  await service.close(DRAIN_MS);
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
    const byServer = new Map<string, typeof keys>();
    for (const key of keys) byServer.set(key.serverName, [...(byServer.get(key.serverName) ?? []), key]);
    for (const hs of config.homeservers) {
      const own = byServer.get(hs.name) ?? [];
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

runAsMain(import.meta.url, run);
