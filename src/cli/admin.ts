// media-repo admin quarantine|unquarantine|purge|usage: the admin API's operations at a shell, on the
// database and datastores directly, recorded in the audit log as "cli". Purges print their progress.
import { loadConfigFile, buildConfig, type Config } from '../config/config.js';
import { createLogger } from '../log.js';
import { parseMxc } from '../matrix/mxc.js';
import type { AdminScope, MediaSelector } from '../media/media-selection.js';
import { describeSelector } from '../media/media-selection.js';
import { closeServices, openServices, type Services } from '../service.js';
import { formatUsage, parseFlags, runTool, UsageError, type CliIo, type FlagSpec } from './args.js';

const PROGRAM = 'media-repo admin';
const SYNOPSIS = `[flags] quarantine|unquarantine media MXC | user USER_ID | server SERVER_NAME
  ${PROGRAM} [flags] purge media MXC | user USER_ID | server SERVER_NAME | remote | old | quarantined
  ${PROGRAM} [flags] usage [SERVER_NAME]`;
const FLAGS: FlagSpec[] = [
  { name: 'config', usage: 'The YAML config file (default: config.yaml here, else built-in defaults)', defaultValue: process.env.MEDIA_REPO_CONFIG ?? '' },
  { name: 'before-ts', usage: 'purge: only media created (user, server), stored (remote) or last accessed (old) before this, in ms since 1970', defaultValue: '' },
  { name: 'include-local', usage: 'purge old: local media too (true or false)', defaultValue: 'false' },
  { name: 'dry-run', usage: 'purge: only count what would go (true or false)', defaultValue: 'false' },
];
const CLI_SCOPE: AdminScope = { actor: 'cli', homeserver: null };

interface AdminCommand { action: string; selector?: MediaSelector; server?: string; dryRun: boolean; configFile: string }

export async function runAdmin(argv: string[], io: CliIo): Promise<number> {
  return runTool(io, formatUsage(PROGRAM, SYNOPSIS, FLAGS), () => parseCommand(argv), async (command) => {
    const config = command.configFile ? loadConfigFile(command.configFile) : buildConfig({});
    const services = await openServices(config, createLogger('warn', io.stderr));
    try {
      await execute(services, config, command, io);
    } finally {
      await closeServices(services);
    }
  });
}

function parseCommand(argv: string[]): AdminCommand | 'help' {
  const parsed = parseFlags(argv, FLAGS);
  if (parsed === 'help') return parsed;
  const [action, kind, value, ...extra] = parsed.positionals;
  const flag = (name: string) => parsed.flags.get(name)!;
  const bool = (name: string) => {
    if (!['true', 'false'].includes(flag(name))) throw new UsageError(`-${name} must be true or false`);
    return flag(name) === 'true';
  };
  const beforeTs = flag('before-ts') === '' ? undefined : Number(flag('before-ts'));
  if (beforeTs !== undefined && !Number.isSafeInteger(beforeTs)) throw new UsageError('-before-ts must be milliseconds since 1970');
  const base = { dryRun: bool('dry-run'), configFile: flag('config') };
  if (action === 'usage') {
    if (value !== undefined) throw new UsageError('usage takes at most one server name');
    return { ...base, action, server: kind };
  }
  if (!['quarantine', 'unquarantine', 'purge'].includes(action ?? '')) throw new UsageError(`unknown admin command "${action ?? ''}"`);
  if (extra.length > 0) throw new UsageError(`unexpected "${extra.join(' ')}"`);
  const needValue = () => {
    if (value === undefined) throw new UsageError(`${action!} ${kind ?? ''} needs a value`);
    return value;
  };
  let selector: MediaSelector;
  if (kind === 'media') {
    const mxc = parseMxc(needValue());
    if (!mxc) throw new UsageError(`"${value!}" is not an mxc:// URI`);
    selector = { kind, serverName: mxc.serverName, mediaId: mxc.mediaId };
  } else if (kind === 'user') selector = { kind, userId: needValue(), beforeTs };
  else if (kind === 'server') selector = { kind, serverName: needValue(), beforeTs };
  else if (action === 'purge' && kind === 'remote') {
    if (beforeTs === undefined) throw new UsageError('purge remote needs -before-ts');
    selector = { kind, beforeTs };
  } else if (action === 'purge' && kind === 'old') selector = { kind, beforeTs: beforeTs ?? Date.now(), includeLocal: bool('include-local') };
  else if (action === 'purge' && kind === 'quarantined') selector = { kind };
  else throw new UsageError(`unknown ${action!} target "${kind ?? ''}"`);
  return { ...base, action: action!, selector };
}

async function execute(services: Services, config: Config, command: AdminCommand, io: CliIo): Promise<void> {
  const { admin, jobs } = services;
  const out = (line: string) => io.stdout.write(`${line}\n`);
  if (command.action === 'usage') {
    for (const server of command.server ? [command.server] : config.homeservers.map((hs) => hs.name)) {
      const usage = await admin.usage.server(server, CLI_SCOPE);
      out(`${server}: ${usage.raw_counts.media} media, ${usage.raw_bytes.media} bytes; ${usage.raw_counts.thumbnails} thumbnails, ${usage.raw_bytes.thumbnails} bytes`);
      if (!config.homeservers.some((hs) => hs.name === server)) continue;
      const top = await admin.usage.userStats(server, { from: 0, limit: 10 }, { by: 'media_length', dir: 'b' });
      for (const user of top.users as Array<{ user_id: string; media_count: number; media_length: number }>) {
        out(`  ${user.user_id}: ${user.media_count} media, ${user.media_length} bytes`);
      }
    }
    return;
  }
  const selector = command.selector!;
  if (command.action !== 'purge') {
    const count = await admin.quarantine[command.action as 'quarantine' | 'unquarantine'](selector, CLI_SCOPE);
    out(`${command.action}d ${count} media (${describeSelector(selector)})`);
    return;
  }
  const total = await jobs.purge.check(selector, CLI_SCOPE);
  if (command.dryRun) {
    await admin.audit.record(CLI_SCOPE, { action: 'purge', target: describeSelector(selector), ...total, dryRun: true });
    out(`would purge ${total.count} media, ${total.bytes} bytes`);
    return;
  }
  let done = 0;
  const result = await jobs.purge.purgeAll(selector, CLI_SCOPE, (batch) => {
    done += batch.count;
    io.stderr.write(`purged ${done}/${total.count} media\n`);
  });
  await admin.audit.record(CLI_SCOPE, { action: 'purge', target: describeSelector(selector), count: result.count, bytes: result.bytes });
  out(`purged ${result.count} media, ${result.bytes} bytes`);
}
