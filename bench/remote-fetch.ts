// 100 clients ask the service at once for the same uncached 50 MiB remote media: how many requests reach
// the origin (must be 1), and how the time to first byte compares with asking the origin directly (the
// service streams while it stores, so it should be close). Loopback only, one run, about 10–20 s.
// Run: npx tsc -p tsconfig.json && node dist/bench/remote-fetch.js
// On the embedded PGlite by default; MEDIA_REPO_BENCH_DATABASE_URL=postgres://… runs it on a scratch database there.
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, get, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import knexFactory from 'knex';
import { buildConfig } from '../src/config/config.js';
import { openDatabase, openEmbedded, type Database } from '../src/db/database.js';
import { formatKeyFile, generateSigningKey } from '../src/keys/key-files.js';
import { createLogger } from '../src/log.js';
import { startService } from '../src/service.js';

const MEDIA_BYTES = 50 * 1024 * 1024;
const CLIENTS = 100;
const CHUNK = 1024 * 1024;
const TENANT = 'hs.bench';
const ORIGIN = 'origin.bench';
const MEDIA_ID = 'big';
const BOUNDARY = 'benchboundary';

interface Fetched {
  ttfbMs: number;
  totalMs: number;
  bytes: number;
  sha256?: string;
}

async function listen(server: Server): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function writeBody(res: ServerResponse, media: Buffer): Promise<void> {
  for (let offset = 0; offset < media.length; offset += CHUNK) {
    if (!res.write(media.subarray(offset, offset + CHUNK))) await once(res, 'drain');
  }
}

/** The origin: the federation download (multipart) for the service, the raw bytes for the direct baseline. */
async function startOrigin(media: Buffer): Promise<{ url: string; federationRequests: () => number; close(): void }> {
  let federationRequests = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      if (req.url!.startsWith(`/_matrix/federation/v1/media/download/${MEDIA_ID}`)) {
        federationRequests++;
        res.writeHead(200, { 'Content-Type': `multipart/mixed; boundary=${BOUNDARY}` });
        res.write(`--${BOUNDARY}\r\nContent-Type: application/json\r\n\r\n{}\r\n--${BOUNDARY}\r\nContent-Type: video/mp4\r\n\r\n`);
        await writeBody(res, media);
        res.end(`\r\n--${BOUNDARY}--\r\n`);
      } else if (req.url === '/direct') {
        res.writeHead(200, { 'Content-Type': 'video/mp4', 'Content-Length': String(media.length) });
        await writeBody(res, media);
        res.end();
      } else {
        res.writeHead(404).end();
      }
    })();
  });
  return { url: await listen(server), federationRequests: () => federationRequests, close: () => server.close() };
}

async function startWhoami(): Promise<{ url: string; close(): void }> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ user_id: '@bench:hs.bench', is_guest: false, device_id: 'BENCH' }));
  });
  return { url: await listen(server), close: () => server.close() };
}

function fetchOnce(url: string, headers: Record<string, string>, hash: boolean): Promise<Fetched> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    get(url, { headers, agent: false }, (res) => {
      let ttfbMs = -1;
      let bytes = 0;
      const digest = hash ? createHash('sha256') : undefined;
      res.on('data', (chunk: Buffer) => {
        if (ttfbMs < 0) ttfbMs = performance.now() - started;
        bytes += chunk.length;
        digest?.update(chunk);
      });
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
        else resolve({ ttfbMs, totalMs: performance.now() - started, bytes, sha256: digest?.digest('hex') });
      });
      res.on('error', reject);
    }).on('error', reject);
  });
}

async function concurrently(url: string, headers: Record<string, string>): Promise<Fetched[]> {
  return Promise.all(Array.from({ length: CLIENTS }, (_, i) => fetchOnce(url, headers, i === 0)));
}

function stats(values: number[]): { median: number; p95: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { median: at(0.5), p95: at(0.95), max: sorted[sorted.length - 1]! };
}

async function benchDatabase(): Promise<Database> {
  const url = process.env.MEDIA_REPO_BENCH_DATABASE_URL;
  if (!url) return openEmbedded();
  const name = `bench_${randomBytes(6).toString('hex')}`;
  const admin = knexFactory({ client: 'pg', connection: url, pool: { min: 0, max: 1 } });
  await admin.raw(`CREATE DATABASE ${name}`);
  const scratch = new URL(url);
  scratch.pathname = `/${name}`;
  const db = await openDatabase({ url: scratch.toString(), dataDir: ':memory:', poolMax: 10 });
  return {
    ...db,
    close: async () => {
      await db.close();
      await admin.raw(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.destroy();
    },
  };
}

async function main(): Promise<void> {
  const media = randomBytes(MEDIA_BYTES);
  const expectedSha = createHash('sha256').update(media).digest('hex');
  const origin = await startOrigin(media);
  const whoami = await startWhoami();
  const dir = mkdtempSync(join(tmpdir(), 'bench-remote-'));
  const keyFile = join(dir, 'hs.signing.key');
  writeFileSync(keyFile, formatKeyFile([generateSigningKey()], 'synapse'));
  const config = buildConfig({
    listen: { host: '127.0.0.1', port: 0 },
    logLevel: 'warn',
    dataDir: dir,
    masterKey: randomBytes(32).toString('hex'),
    homeservers: [{ name: TENANT, clientApi: whoami.url, signingKeyPath: keyFile }],
    federation: { serverOverrides: { [ORIGIN]: origin.url }, remoteMaxBytes: 64 * 1024 * 1024 },
  }, join(dir, 'config.yaml'));
  const db = await benchDatabase();
  const service = await startService(config, createLogger('warn'), db);
  try {
    const single = await fetchOnce(`${origin.url}/direct`, {}, false);
    const direct = await concurrently(`${origin.url}/direct`, {});
    const viaService = await concurrently(`${service.url}/_matrix/client/v1/media/download/${ORIGIN}/${MEDIA_ID}`, { Host: TENANT, Authorization: 'Bearer bench' });
    await service.services.remoteMedia.settled();

    const complete = viaService.every((f) => f.bytes === MEDIA_BYTES) && viaService[0]!.sha256 === expectedSha;
    const directTtfb = stats(direct.map((f) => f.ttfbMs));
    const serviceTtfb = stats(viaService.map((f) => f.ttfbMs));
    const directTotal = stats(direct.map((f) => f.totalMs));
    const serviceTotal = stats(viaService.map((f) => f.totalMs));
    const row = await service.services.media.get(ORIGIN, MEDIA_ID);
    const ms = (value: number) => `${value.toFixed(1)} ms`;
    console.log(`${CLIENTS} concurrent clients, one uncached ${MEDIA_BYTES / 1024 / 1024} MiB remote media (${db.embedded ? 'embedded PGlite' : 'PostgreSQL'})`);
    console.log(`upstream requests to the origin:      ${origin.federationRequests()}${origin.federationRequests() === 1 ? '' : '   <-- expected 1'}`);
    console.log(`every client got all bytes (sha256):  ${complete ? 'yes' : 'NO'}; cached: ${row?.sha256 === expectedSha ? 'yes' : 'NO'}`);
    console.log(`time to first byte   direct, 1 client:    ${ms(single.ttfbMs)}`);
    console.log(`                     direct, ${CLIENTS} clients: median ${ms(directTtfb.median)}, p95 ${ms(directTtfb.p95)}, max ${ms(directTtfb.max)}`);
    console.log(`                    service, ${CLIENTS} clients: median ${ms(serviceTtfb.median)}, p95 ${ms(serviceTtfb.p95)}, max ${ms(serviceTtfb.max)}`);
    console.log(`   ratio service/direct (${CLIENTS} clients): median ${(serviceTtfb.median / directTtfb.median).toFixed(2)}x, p95 ${(serviceTtfb.p95 / directTtfb.p95).toFixed(2)}x`);
    console.log(`time to last byte    direct, 1 client:    ${ms(single.totalMs)}`);
    console.log(`                     direct, ${CLIENTS} clients: median ${ms(directTotal.median)}, max ${ms(directTotal.max)}`);
    console.log(`                    service, ${CLIENTS} clients: median ${ms(serviceTotal.median)}, max ${ms(serviceTotal.max)}`);
    if (origin.federationRequests() !== 1 || !complete) process.exitCode = 1;
  } finally {
    await service.close();
    origin.close();
    whoami.close();
  }
}

await main();
