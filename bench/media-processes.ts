// Processes and HTTP plumbing for the media benchmarks: the service as a child process, nginx on a
// temporary prefix, a whoami stand-in, and a keep-alive HTTP client that counts bytes without keeping them.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
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

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
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
  dataDir: string, whoamiUrl: string, databaseUrl?: string, observe = OBSERVE, extraConfig: string[] = [], homeserverFields: string[] = [],
): Promise<ChildService> {
  const port = await freePort();
  mkdirSync(dataDir, { recursive: true });
  const configFile = join(dataDir, 'config.yaml');
  writeFileSync(configFile, [
    `listen: {host: 127.0.0.1, port: ${port}}`,
    ...(observe
      ? ['logLevel: info', 'accessLog: {enabled: true}', `metrics: {enabled: true, host: 127.0.0.1, port: ${await freePort()}}`]
      : ['logLevel: warn', 'accessLog: {enabled: false}']),
    `dataDir: ${JSON.stringify(dataDir)}`,
    `masterKey: ${randomBytes(32).toString('hex')}`,
    'homeservers:',
    `  - {name: bench.example, clientApi: ${JSON.stringify(whoamiUrl)}, hostnames: ['127.0.0.1'], maxUploadBytes: 2147483648${homeserverFields.map((f) => `, ${f}`).join('')}}`,
    'media: {legacyFreezeAt: null}',
    ...(databaseUrl ? [`database: {url: ${JSON.stringify(databaseUrl)}}`] : []),
    ...extraConfig,
    '',
  ].join('\n'));
  const cli = fileURLToPath(new URL('../src/cli/media-repo.js', import.meta.url));
  // The access log goes to a file, as it would to a log collector, not to the bench's console.
  const stdout = observe ? openSync(join(dataDir, 'service.log'), 'a') : 'inherit';
  const child = spawn(process.execPath, [cli, '-config', configFile, 'serve'], { stdio: ['ignore', stdout, 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  await waitUntilUp(`${url}/healthz`, child);
  return {
    url,
    child,
    stop: async () => {
      child.kill('SIGTERM');
      if (child.exitCode === null) await once(child, 'exit');
    },
  };
}

export interface Nginx {
  url: string;
  stop(): Promise<void>;
}

/** nginx on a temporary prefix: static files from `root`, WebDAV PUT uploads under /upload/, one worker. */
export async function startNginx(prefix: string, root: string, binary = '/usr/sbin/nginx'): Promise<Nginx> {
  const port = await freePort();
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
  server {
    listen 127.0.0.1:${port};
    root ${root};
    location /upload/ {
      dav_methods PUT;
      create_full_put_path on;
      client_max_body_size 2g;
    }
  }
}
`);
  const child = spawn(binary, ['-p', prefix, '-c', join(prefix, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', 'inherit', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  await waitUntilUp(`${url}/`, child);
  return {
    url,
    stop: async () => {
      child.kill('SIGQUIT');
      if (child.exitCode === null) await once(child, 'exit');
    },
  };
}

async function waitUntilUp(url: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`${url}: the process exited with ${child.exitCode}`);
    try {
      // The service answers 503 "Starting" while it opens its database: up means past that.
      if ((await http(url)).status !== 503) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`${url} did not come up in 30 s`);
}

/** VmHWM (peak resident set) or VmRSS of a process, in bytes. */
export function memoryOf(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

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
