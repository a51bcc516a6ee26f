// `media-repo serve` as a supervisor sees it: a start that cannot work exits non-zero within seconds with one
// line naming the cause; SIGTERM and SIGINT let requests in flight finish, then exit 0.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { builtMediaRepo } from '../helpers/built-cli.js';
import { freePort } from '../../bench/media-processes.js';

const TOKEN = 'process-test-token-0123456789';

interface Child {
  process: ChildProcess;
  stdout: string;
  stderr: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
}

let entry: string;
beforeAll(() => {
  entry = builtMediaRepo();
}, 120_000);

/** `dir`: reuse a folder (and its embedded database, initialised once) across starts. */
function serve(config: string[], dir = mkdtempSync(join(tmpdir(), 'serve-process-'))): Child {
  writeFileSync(join(dir, 'tokens'), `${TOKEN} @bot:hs.example\n`);
  writeFileSync(join(dir, 'config.yaml'), [`masterKey: ${randomBytes(32).toString('hex')}`, 'logLevel: info', ...config].join('\n'));
  const started = Date.now();
  const child = spawn(process.execPath, [entry, '-config', join(dir, 'config.yaml'), 'serve'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const state: Child = {
    process: child,
    stdout: '',
    stderr: '',
    exited: new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, ms: Date.now() - started }))),
  };
  child.stdout!.on('data', (chunk: Buffer) => (state.stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (state.stderr += chunk.toString()));
  return state;
}

async function listening(child: Child): Promise<void> {
  for (let i = 0; i < 600 && !child.stdout.includes('"msg":"listening"'); i++) {
    if (child.process.exitCode !== null) throw new Error(`exited early: ${child.stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function occupiedPort(accept: (socket: Socket) => void = () => undefined): Promise<{ server: Server; port: number }> {
  const server = createServer(accept).listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return { server, port: (server.address() as { port: number }).port };
}

const homeserver = (extra = '') => ['homeservers:', `  - {name: hs.example, staticAccessTokens: {file: tokens}${extra}}`];

describe('a start that cannot work', () => {
  test('a busy port exits non-zero within 5 s, with one line naming the address', async () => {
    const { server, port } = await occupiedPort();
    try {
      const child = serve([`listen: {host: 127.0.0.1, port: ${port}}`, ...homeserver()]);
      const { code, ms } = await child.exited;
      expect(code).toBe(1);
      expect(ms).toBeLessThan(5000);
      expect(child.stderr).toBe(`cannot listen on 127.0.0.1:${port}: the address is already in use (EADDRINUSE); change listen.host or listen.port\n`);
    } finally {
      server.close();
    }
  });

  test('a database that refuses connections exits non-zero at once, naming it without its password', async () => {
    const port = await freePort();
    const child = serve(['listen: {host: 127.0.0.1, port: 0}', `database: {url: "postgres://media:hunter2@127.0.0.1:${port}/media"}`, ...homeserver()]);
    const { code, ms } = await child.exited;
    expect(code).toBe(1);
    expect(ms).toBeLessThan(5000);
    expect(child.stderr).toBe(`cannot reach the database at 127.0.0.1:${port}/media: ECONNREFUSED; check database.url\n`);
  });

  test('a database that never answers is given up on after 10 s', async () => {
    const sockets: Socket[] = [];
    const { server, port } = await occupiedPort((socket) => sockets.push(socket));
    try {
      const child = serve(['listen: {host: 127.0.0.1, port: 0}', `database: {url: "postgres://media@127.0.0.1:${port}/media"}`, ...homeserver()]);
      const { code, ms } = await child.exited;
      expect(code).toBe(1);
      expect(ms).toBeGreaterThanOrEqual(9000);
      expect(ms).toBeLessThan(15_000);
      expect(child.stderr).toBe(`cannot reach the database at 127.0.0.1:${port}/media: no answer within 10 s; check database.url\n`);
    } finally {
      for (const socket of sockets) socket.destroy();
      server.close();
    }
  }, 30_000);

  test('an unreadable key file exits non-zero within seconds, naming the file', async () => {
    const child = serve(['listen: {host: 127.0.0.1, port: 0}', ...homeserver(', signingKeyPath: missing.key')]);
    const { code, ms } = await child.exited;
    expect(code).toBe(1);
    expect(ms).toBeLessThan(5000);
    expect(child.stderr).toMatch(/^homeserver hs\.example: signing key \/.*\/missing\.key: cannot read: no such file or directory\n$/);
  });
});

describe('stopping', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'serve-process-stop-'));
  test.each(['SIGTERM', 'SIGINT'] as const)('%s lets an upload in flight finish, refuses new connections, then exits 0', async (signal) => {
    const port = await freePort();
    const child = serve([`listen: {host: 127.0.0.1, port: ${port}}`, ...homeserver()], dataDir);
    await listening(child);
    const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/_matrix/media/v3/upload', headers: {
        host: 'hs.example', authorization: `Bearer ${TOKEN}`, 'content-type': 'text/plain', 'content-length': '10',
      } }, (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      req.on('error', reject);
      req.write('hello');
      // The rest is sent only after the signal: the request is in flight when it arrives.
      setTimeout(() => {
        child.process.kill(signal);
        setTimeout(async () => {
          const refused = await fetch(`http://127.0.0.1:${port}/healthz`).then(() => 'answered', () => 'refused');
          expect(refused).toBe('refused');
          req.end('world');
        }, 500);
      }, 300);
    });
    const { status, body } = await answer;
    expect(status).toBe(200);
    expect(body).toMatch(/"content_uri":"mxc:\/\/hs\.example\//);
    const { code } = await child.exited;
    expect(code).toBe(0);
    expect(child.stdout).toContain('shutting down: finishing requests in flight');
  }, 60_000);
});
