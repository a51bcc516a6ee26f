// Processes and HTTP plumbing for the media benchmarks: the service as a child process, nginx on a
// temporary prefix, a whoami stand-in, and a keep-alive HTTP client that counts bytes without keeping them.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, createReadStream, createWriteStream, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { Agent, createServer, request, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

export const agent = new Agent({ keepAlive: true, maxSockets: 64 });

export interface HttpResult {
  status: number;
  bytes: number;
  body: string;
}

/** One request; a `file` body is streamed from disk. Only the first 64 KiB of the answer is kept, as text. */
export function http(url: string, options: { method?: string; headers?: Record<string, string>; file?: string; size?: number } = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const headers = { ...options.headers, ...(options.file ? { 'content-length': String(options.size) } : {}) };
    const req = request(url, { method: options.method ?? 'GET', headers, agent }, (res) => {
      let bytes = 0;
      const kept: Buffer[] = [];
      res.on('data', (chunk: Buffer) => {
        if (bytes < 65536) kept.push(chunk);
        bytes += chunk.length;
      });
      res.on('end', () => resolve({ status: res.statusCode!, bytes, body: Buffer.concat(kept).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (options.file) createReadStream(options.file, { highWaterMark: 1024 * 1024 }).pipe(req);
    else req.end();
  });
}

/**
 * A loopback port nothing listens on, below the kernel's ephemeral range: listen(0) elsewhere (other test
 * workers, peers) is never handed it, so it stays free to listen on, and connecting to it stays refused.
 */
export async function freePort(): Promise<number> {
  const low = ephemeralLow();
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 10_000 + Math.floor(Math.random() * (low - 10_000));
    if (await refuses(port)) return port;
  }
  throw new Error('no loopback port below the ephemeral range is free');
}

function ephemeralLow(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
}

function refuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(false)));
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
}

/** A homeserver that says every token belongs to @bench:bench.example. */
export async function startWhoamiStandIn(): Promise<{ url: string; server: Server }> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ user_id: '@bench:bench.example', is_guest: false }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

export interface MoreServiceOptions {
  /** Keys of the config's `media:` section. */
  media?: Record<string, unknown>;
  /** The service's log and stderr go to this file instead of the bench's console. */
  logFile?: string;
  /** YAML list items replacing the one bench.example homeserver. */
  homeservers?: string[];
  /** More `key: value` fields for the one bench.example homeserver. */
  homeserverFields?: string[];
  /** How long to wait for /healthz to answer 200 (default 120 s). */
  upTimeoutMs?: number;
}

export interface ChildService {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** MEDIA_REPO_BENCH_OBSERVE=1: metrics and the access log on (the access log into a file), to measure their cost. */
export const OBSERVE = process.env.MEDIA_REPO_BENCH_OBSERVE === '1';

/**
 * The built service (dist/src/cli/media-repo.js) in its own process: on `databaseUrl`, else on the
 * embedded database in `dataDir`; with metrics and access log when `observe`.
 */
/**
 * `extraConfig`: more top-level YAML lines, e.g. a `datastores:` list; `homeserverFields`: more entries of the
 * bench.example homeserver's flow mapping, e.g. `signingKeyPath: "…"`.
 */
export async function startServiceProcess(
  dataDir: string, whoamiUrl: string, databaseUrl?: string, observe = OBSERVE, extraConfig: string[] = [], more: MoreServiceOptions = {},
): Promise<ChildService> {
  const media = more.media ?? {};
  const port = await freePort();
  mkdirSync(dataDir, { recursive: true });
  const configFile = join(dataDir, 'config.yaml');
  writeFileSync(configFile, [
    `listen: {host: 127.0.0.1, port: ${port}}`,
    ...(observe
      ? ['logLevel: info', 'accessLog: {enabled: true}', `metrics: {enabled: true, host: 127.0.0.1, port: ${await freePort()}}`]
      : ['logLevel: warn', 'accessLog: {enabled: false}']),
    `dataDir: ${JSON.stringify(dataDir)}`,
    // Kept in the data directory, so that a restart on it can decrypt the signing keys it stored.
    `masterKey: {file: ${JSON.stringify(masterKeyFile(dataDir))}}`,
    'homeservers:',
    ...(more.homeservers ?? [`  - {name: bench.example, clientApi: ${JSON.stringify(whoamiUrl)}, hostnames: ['127.0.0.1'], maxUploadBytes: 2147483648${(more.homeserverFields ?? []).map((f) => `, ${f}`).join('')}}`]),
    `media: ${JSON.stringify({ legacyFreezeAt: null, ...media })}`,
    ...(databaseUrl ? [`database: {url: ${JSON.stringify(databaseUrl)}}`] : []),
    ...extraConfig,
    '',
  ].join('\n'));
  const cli = fileURLToPath(new URL('../src/cli/media-repo.js', import.meta.url));
  // The access log goes to a file, as it would to a log collector, not to the bench's console.
  const logFd = more.logFile ? openSync(more.logFile, 'a') : undefined;
  const stdout = observe ? openSync(join(dataDir, 'service.log'), 'a') : (logFd ?? 'inherit');
  // MEDIA_REPO_BENCH_PROFILE_DIR: the service writes a V8 CPU profile there when it stops, to see where its time goes.
  const profile = process.env.MEDIA_REPO_BENCH_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.MEDIA_REPO_BENCH_PROFILE_DIR}`] : [];
  // As `npm start` runs it: two malloc arenas, unless the environment chose otherwise (see the README's production steps).
  const env = { ...process.env, MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? '2' };
  const child = spawn(process.execPath, [...profile, cli, '-config', configFile, 'serve'], { stdio: ['ignore', stdout, logFd ?? 'inherit'], env });
  if (logFd !== undefined) closeSync(logFd); // the child has its own copy
  const url = `http://127.0.0.1:${port}`;
  // Until 200: while starting, the listener already answers every request with 503.
  await waitUntilUp(`${url}/healthz`, child, { status: 200, timeoutMs: more.upTimeoutMs });
  return {
    url,
    child,
    stop: async () => {
      child.kill('SIGTERM');
      if (child.exitCode === null) await once(child, 'exit');
    },
  };
}

/** Debian's nginx (nginx-light has sendfile, X-Accel-Redirect and secure_link). */
export const NGINX_BINARY = '/usr/sbin/nginx';

function masterKeyFile(dataDir: string): string {
  const file = join(dataDir, 'master.key');
  if (!existsSync(file)) writeFileSync(file, randomBytes(32).toString('hex'), { mode: 0o600 });
  return file;
}

/** A server program started here (nginx, lighttpd), answering at `url`. */
export interface RunningProgram {
  url: string;
  stop(): Promise<void>;
}

export type Nginx = RunningProgram;

/** Runs `binary` in the foreground until stopped with `stopSignal`; up once `url` answers. */
export async function startProgram(binary: string, args: string[], url: string, stopSignal: NodeJS.Signals): Promise<RunningProgram> {
  const child = spawn(binary, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  await waitUntilUp(`${url}/`, child);
  return {
    url,
    stop: async () => {
      child.kill(stopSignal);
      if (child.exitCode === null) await once(child, 'exit');
    },
  };
}

/** nginx on a temporary prefix: static files from `root`, WebDAV PUT uploads under /upload/, one worker. */
export async function startNginx(prefix: string, root: string, binary = NGINX_BINARY): Promise<Nginx> {
  const port = await freePort();
  return startNginxWith(prefix, `
  server {
    listen 127.0.0.1:${port};
    root ${root};
    location /upload/ {
      dav_methods PUT;
      create_full_put_path on;
      client_max_body_size 2g;
    }
  }`, `http://127.0.0.1:${port}`, binary);
}

/** nginx on a temporary prefix with one worker and sendfile, `httpConfig` in its http {}; up when `url` answers. */
export async function startNginxWith(prefix: string, httpConfig: string, url: string, binary = NGINX_BINARY): Promise<Nginx> {
  for (const dir of ['logs', 'body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(prefix, dir), { recursive: true });
  writeFileSync(join(prefix, 'nginx.conf'), `
${process.getuid?.() === 0 ? 'user root;' : ''}
worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  client_body_temp_path ${prefix}/body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
${httpConfig}
}
`);
  return startProgram(binary, ['-p', prefix, '-c', join(prefix, 'nginx.conf'), '-g', 'daemon off;'], url, 'SIGQUIT');
}

/** Polls every 20 ms until `url` answers below 500 (or with `status`, when given); kills a process that never does. */
async function waitUntilUp(url: string, child: ChildProcess, until: { status?: number; timeoutMs?: number } = {}): Promise<void> {
  // Two minutes by default: the embedded database's first start takes that long on a loaded 2-core machine.
  const timeoutMs = until.timeoutMs ?? 120_000;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${url}: the process exited with ${child.exitCode}`);
    // The service answers 503 while it opens its database.
    const answered = await http(url).then((res) => (until.status === undefined ? res.status < 500 : res.status === until.status), () => false);
    if (answered) return;
    await sleep(20);
  }
  child.kill('SIGKILL'); // not left running behind a failed bench
  throw new Error(`${url} did not come up in ${timeoutMs / 1000} s`);
}

/** VmHWM (peak resident set) or VmRSS of a process, in bytes. */
export function memoryOf(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

/** CPU time (user + system) a process has used so far, in seconds: a figure the machine's load barely changes. */
export function cpuSecondsOf(pid: number): number {
  // Fields after the command name, which is in parentheses and may hold spaces; utime and stime are fields 14 and 15.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

// USER_HZ: 100 on every Linux architecture Node runs on.
const CLOCK_TICKS_PER_SECOND = 100;

/** Resets VmHWM to the current RSS (Linux clear_refs "5"), so that a later peak belongs to what follows. */
export function resetPeakMemory(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

/** A fresh database on the PostgreSQL at `serverUrl`, dropped by the returned function. */
export async function createScratchDatabase(serverUrl: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `bench_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    },
  };
}

/** A file of `size` random bytes, written 1 MiB at a time, and flushed: see flushFile. */
export async function writeRandomFile(path: string, size: number): Promise<void> {
  const out = createWriteStream(path);
  for (let written = 0; written < size; written += 1024 * 1024) {
    if (!out.write(randomBytes(Math.min(1024 * 1024, size - written)))) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  await flushFile(path);
}

/**
 * fsync of a file the bench wrote, outside any timing: otherwise its dirty pages are written back while a
 * later case runs, and a side that flushes its own writes (the service) waits for them too.
 */
export async function flushFile(path: string): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Uploads `file` to the service as the whoami stand-in's user; its media ID. */
export async function uploadToService(service: ChildService, file: string, size: number, contentType = 'application/octet-stream'): Promise<string> {
  const result = await http(`${service.url}/_matrix/media/v3/upload`, {
    method: 'POST', headers: { authorization: 'Bearer bench-token', 'content-type': contentType }, file, size,
  });
  if (result.status !== 200) throw new Error(`upload: HTTP ${result.status}: ${result.body.slice(0, 200)}`);
  return String(JSON.parse(result.body).content_uri).split('/').pop()!;
}

/** Open file descriptors of a process: all of them, and those that are not sockets (files, pipes, ...). */
export function openFilesOf(pid: number): { all: number; notSockets: number } {
  const targets = readdirSync(`/proc/${pid}/fd`).map((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      return 'closed meanwhile';
    }
  });
  return { all: targets.length, notSockets: targets.filter((target) => !target.startsWith('socket:')).length };
}
