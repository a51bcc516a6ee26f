// The built service as a child process that a test can kill -9 and start again on the same folder and
// database, and the `storage` commands run the same way: the crash-safety tests' shared harness.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { builtMediaRepo } from './built-cli.js';
import { createScratchDatabase, REAL_POSTGRES_URL } from './database.js';

export interface CrashableService {
  /** The folder holding the config, the data folder and the file datastore `media`. */
  dir: string;
  /** The running child's base URL. */
  readonly url: string;
  /** The running child's process id. */
  readonly pid: number;
  start(): Promise<void>;
  /** SIGKILL: nothing of the child's gets to run. */
  kill(): Promise<void>;
  /** SIGTERM: a clean stop (the embedded database allows one process at a time). */
  stop(): Promise<void>;
  /** Non-empty staging files of the file datastore. */
  stagedFiles(): string[];
  /** `media-repo storage <command>` as its own process. */
  storage(command: 'check' | 'sweep'): Promise<{ code: unknown; out: string }>;
  close(): Promise<void>;
}

/** `config`: everything but the listener, logging, data folder, master key, database and datastore. */
export async function crashableService(prefix: string, config: (dir: string) => Record<string, unknown>): Promise<CrashableService> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const staging = join(dir, 'media', '.tmp');
  const entry = builtMediaRepo();
  const scratch = REAL_POSTGRES_URL ? await createScratchDatabase() : undefined;
  const configFile = join(dir, 'config.yaml');
  writeFileSync(configFile, JSON.stringify({
    ...(scratch ? { database: { url: scratch.url } } : {}),
    listen: { host: '127.0.0.1', port: 0 }, logLevel: 'info', dataDir: join(dir, 'data'), masterKey: randomBytes(32).toString('hex'),
    datastores: [{ id: 'default', type: 'file', forKinds: ['all'], opts: { path: join(dir, 'media') } }],
    ...config(dir),
  }));
  const run = (args: string[]) => spawn(process.execPath, [entry, '-config', configFile, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let served: { child: ChildProcess; url: string; exited: Promise<unknown> } | undefined;
  const running = () => {
    if (!served) throw new Error('the service is not running');
    return served;
  };
  const end = async (signal: NodeJS.Signals) => {
    const { child, exited } = running();
    child.kill(signal);
    await exited;
    served = undefined;
  };

  return {
    dir,
    get url() {
      return running().url;
    },
    get pid() {
      return running().child.pid!;
    },
    async start() {
      // A test that timed out may have left one running: two processes on one embedded database corrupt it.
      if (served) await end('SIGKILL');
      const child = run(['serve']);
      const exited = new Promise((resolve) => child.once('exit', resolve));
      let out = '';
      let err = '';
      child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
      const url = await new Promise<string>((resolve, reject) => {
        child.stdout!.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          const listening = /"msg":"listening".*?"url":"([^"]+)"|"url":"([^"]+)"[^\n]*"msg":"listening"/.exec(out);
          if (listening) resolve((listening[1] ?? listening[2])!);
        });
        child.once('exit', () => reject(new Error(`serve exited: ${err}`)));
      });
      served = { child, url, exited };
    },
    kill: () => end('SIGKILL'),
    stop: () => end('SIGTERM'),
    stagedFiles() {
      mkdirSync(staging, { recursive: true });
      return readdirSync(staging).filter((name) => statSync(join(staging, name)).size > 0);
    },
    async storage(command) {
      const child = run(['storage', command]);
      let out = '';
      child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
      const code = await new Promise((resolve) => child.once('exit', resolve));
      return { code, out };
    },
    async close() {
      if (served) await end('SIGKILL');
      await scratch?.drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function until(condition: () => boolean, what: string, everyMs = 50): Promise<void> {
  for (let waited = 0; !condition(); waited += everyMs) {
    if (waited > 30_000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** CPU time a process has used so far (user and system), in ms; Linux /proc. */
export function cpuMs(pid: number): number {
  // Fields 14 and 15 after the parenthesised command name, in clock ticks (100 a second on Linux).
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}
