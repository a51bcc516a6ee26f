// Over 500 generated hostile requests on raw sockets, from tables: each must get exactly its status and
// Matrix error (or Node's bare parser answer), and after each batch the service must still be healthy.
import { randomBytes } from 'node:crypto';
import sharp from 'sharp';
import type { RunningService } from '../../src/service.js';
import { startDnsServer, type DnsServer } from '../helpers/dns-server.js';
import { requestBytes, sendRaw, type SocketResponse } from '../helpers/raw-socket.js';
import { startTestService } from '../helpers/service-under-test.js';
import { startStandInHomeserver, type StandInHomeserver } from '../helpers/stand-in-homeserver.js';
import { ADMIN_SECRET, MAX_UPLOAD, TENANT, TOKEN, type Expected, type HostileCase } from './hostile/cases.js';
import { authorizationCases, framingCases, hostCases, xMatrixCases } from './hostile/header-cases.js';
import { mediaPathCases, methodCases, queryCases, uploadCases } from './hostile/path-cases.js';

const SECRET_ENV = 'HOSTILE_ADMIN_SECRET';
const BATCH = 60;
const PARALLEL = 6;

let whoami: StandInHomeserver;
let dns: DnsServer;
let service: RunningService;
let port: number;
let cases: HostileCase[];

const send = (request: HostileCase['request']) => sendRaw(port, Buffer.isBuffer(request) ? request : requestBytes(request));

beforeAll(async () => {
  process.env[SECRET_ENV] = ADMIN_SECRET;
  whoami = await startStandInHomeserver({ [TOKEN]: { userId: '@alice:a.example' } });
  // An empty zone: every remote name is NXDOMAIN at once, so nothing waits on the real network.
  dns = await startDnsServer();
  service = await startTestService({
    trustProxy: false,
    sharedSecretAuth: { token: { env: SECRET_ENV } },
    homeservers: [{ name: TENANT, clientApi: whoami.url, maxUploadBytes: MAX_UPLOAD }, { name: 'b.example', clientApi: whoami.url }],
    media: { legacyFreezeAt: null },
    federation: { dnsServers: [dns.address], connectTimeoutMs: 500, requestTimeoutMs: 1000 },
  });
  port = Number(new URL(service.url).port);
  const png = await sharp({ create: { width: 32, height: 32, channels: 3, background: '#c33' } }).png().toBuffer();
  const ctx = { mediaId: await roundTrip(png, 'image/png') };
  cases = [
    ...hostCases(ctx), ...authorizationCases(ctx), ...xMatrixCases(ctx), ...framingCases(ctx),
    ...mediaPathCases(ctx), ...queryCases(ctx), ...methodCases(ctx), ...uploadCases(),
  ];
}, 240_000);
afterAll(async () => {
  await service.close();
  await whoami.close();
  await dns.close();
});

/** Uploads `bytes`, downloads them again, and returns the media ID once they came back equal. */
async function roundTrip(bytes: Buffer, contentType = 'application/octet-stream'): Promise<string> {
  const headers: [string, string][] = [['Host', TENANT], ['Authorization', `Bearer ${TOKEN}`]];
  const up = await send({ method: 'POST', path: '/_matrix/media/v3/upload', headers: [...headers, ['Content-Type', contentType], ['Content-Length', String(bytes.length)]], body: bytes });
  if (up.status !== 200) throw new Error(`upload failed: ${up.status} ${up.body.toString()}`);
  const mediaId = String(up.json()!.content_uri).split('/').pop()!;
  const down = await send({ path: `/_matrix/client/v1/media/download/${TENANT}/${mediaId}`, headers });
  if (down.status !== 200 || !down.body.equals(bytes)) throw new Error(`download failed: ${down.status}`);
  return mediaId;
}

/** What differs between what came back and what was expected, or undefined. */
function mismatch(res: SocketResponse, expected: Expected): string | undefined {
  const json = res.json();
  const got = `${res.status} ${json ? JSON.stringify(json).slice(0, 160) : `(${res.body.length} bytes, not JSON)`}`;
  if (res.status !== expected.status) return got;
  if (expected.errcode === 'success') return json?.errcode === undefined ? undefined : got;
  const matrixError = res.headers['content-type']?.startsWith('application/json') && json?.errcode === expected.errcode && typeof json.error === 'string';
  return matrixError ? undefined : got;
}

async function runBatch(batch: HostileCase[]): Promise<string[]> {
  const failures: string[] = [];
  for (let i = 0; i < batch.length; i += PARALLEL) {
    await Promise.all(batch.slice(i, i + PARALLEL).map(async (c) => {
      const res = await send(c.request).catch((error: Error) => error);
      const problem = res instanceof Error ? `no answer: ${res.message}` : mismatch(res, c.expected);
      if (problem) failures.push(`${c.name}: expected ${c.expected.status} ${c.expected.errcode}, got ${problem}`);
    }));
  }
  return failures;
}

test('the tables generate at least 500 requests', () => {
  expect(cases.length).toBeGreaterThanOrEqual(500);
});

describe.each(Array.from({ length: 12 }, (_, i) => i))('batch %i', (index) => {
  test('every request gets its exact answer, and the service is healthy after', async () => {
    const batch = cases.slice(index * BATCH, (index + 1) * BATCH);
    expect(await runBatch(batch)).toEqual([]);
    expect((await send({ path: '/healthz', headers: [['Host', TENANT]] })).status).toBe(200);
    await roundTrip(randomBytes(2048));
  });
});

test('no case is left outside the batches', () => {
  expect(cases.length).toBeLessThanOrEqual(12 * BATCH);
});
