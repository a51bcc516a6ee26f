// Clients that cut downloads mid-body, on the client and the federation paths: every file descriptor the
// service opened is closed again, and nothing is logged at warn level or above (a client leaving is no error).
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { encodeBase64 } from '../../src/matrix/base64.js';
import { createSigner, generateSeed } from '../../src/matrix/ed25519.js';
import { signJson } from '../../src/matrix/signed-json.js';
import { buildAuthorizationHeader } from '../../src/matrix/x-matrix.js';
import type { RunningService } from '../../src/service.js';
import { rawRequest } from '../helpers/raw-http.js';
import { startTestService } from '../helpers/service-under-test.js';
import { startStandInHomeserver, type StandInHomeserver } from '../helpers/stand-in-homeserver.js';

const TENANT = 'hs.example';
const ORIGIN = 'peer.example';
const KEY_ID = 'ed25519:p1';
const TOKEN = 'abort-test-token';
const MEDIA_ID = 'largeMedia';
// Larger than a loopback socket buffers, so the body is still streaming from the file when the client leaves.
const CONTENT = randomBytes(8 * 1024 * 1024);
const ABORTS = 1000;
const CONCURRENCY = 25;

const CLIENT_PATH = `/_matrix/client/v1/media/download/${TENANT}/${MEDIA_ID}`;
const FEDERATION_PATH = `/_matrix/federation/v1/media/download/${MEDIA_ID}`;

const signer = createSigner(generateSeed());
let keyServer: Server;
let whoami: StandInHomeserver;
let service: RunningService;
const logLines: string[] = [];

beforeAll(async () => {
  whoami = await startStandInHomeserver({ [TOKEN]: { userId: `@alice:${TENANT}` } });
  keyServer = createServer((_req, res) => {
    const keys = signJson({
      server_name: ORIGIN,
      valid_until_ts: Date.now() + 3_600_000,
      verify_keys: { [KEY_ID]: { key: encodeBase64(signer.publicKey) } },
      old_verify_keys: {},
    }, ORIGIN, KEY_ID, signer);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(keys));
  });
  keyServer.listen(0, '127.0.0.1');
  await once(keyServer, 'listening');
  service = await startTestService({
    logLevel: 'debug',
    homeservers: [{ name: TENANT, clientApi: whoami.url }],
    federation: { serverOverrides: { [ORIGIN]: `http://127.0.0.1:${(keyServer.address() as AddressInfo).port}` } },
  }, { logLines });
  const { media, datastores } = service.services;
  const blob = await datastores.forKind('local_media', TENANT).writeStream(Readable.from([CONTENT]), { maxBytes: CONTENT.length });
  await media.insertMedia({ serverName: TENANT, mediaId: MEDIA_ID, isRemote: false, userId: `@alice:${TENANT}`, contentType: 'application/octet-stream', uploadName: 'large.bin' }, blob);
}, 240_000);

afterAll(async () => {
  await service?.close();
  await whoami?.close();
  keyServer?.close();
});

const requestHeaders: Record<'client' | 'federation', () => string> = {
  client: () => `GET ${CLIENT_PATH} HTTP/1.1\r\nHost: ${TENANT}\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`,
  federation: () => {
    const authorization = buildAuthorizationHeader({ method: 'GET', uri: FEDERATION_PATH, origin: ORIGIN, destination: TENANT }, KEY_ID, signer);
    return `GET ${FEDERATION_PATH} HTTP/1.1\r\nHost: ${TENANT}\r\nAuthorization: ${authorization}\r\n\r\n`;
  },
};

/**
 * Sends the request on a raw socket and destroys it: after `cutAfterMs` (while the service is still
 * looking the media up or opening it), or else once the body has started.
 */
function downloadAndAbort(port: number, head: string, cutAfterMs?: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(head);
      if (cutAfterMs !== undefined) setTimeout(() => socket.destroy(), cutAfterMs);
    });
    let received = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (end === -1 || socket.destroyed) return;
      if (!received.subarray(0, 12).toString().endsWith('200')) {
        socket.destroy();
        return reject(new Error(`expected 200, got ${received.subarray(0, 200).toString()}`));
      }
      // Some of the body has arrived: the response is mid-stream.
      if (received.length > end + 4 + 1024) socket.destroy();
    });
    socket.on('close', () => resolve());
    socket.on('error', reject);
  });
}

const openDescriptors = () => readdirSync('/proc/self/fd').length;

async function settledDescriptors(baseline: number): Promise<number> {
  const deadline = Date.now() + 20_000;
  let count = openDescriptors();
  while (count > baseline && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    count = openDescriptors();
  }
  return count;
}

async function abortMany(path: 'client' | 'federation'): Promise<void> {
  const port = Number(new URL(service.url).port);
  let next = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < ABORTS) {
      // Every other one is cut before the answer, at varying points of its handling.
      const cutAfterMs = next % 2 === 0 ? (next / 2) % 8 : undefined;
      next++;
      await downloadAndAbort(port, requestHeaders[path](), cutAfterMs);
    }
  }));
}

const problems = () => logLines.map((line) => JSON.parse(line) as { level: number; msg: string }).filter((line) => line.level >= 40);

test.each(['client', 'federation'] as const)('%s: 1,000 downloads cut mid-body leave no descriptor open and no warning or error logged', async (path) => {
  logLines.length = 0; // start-up notices are not this test's business
  // Warm-up at the same concurrency: database connections, keys and caches are opened once, not leaked.
  await abortMany(path);
  const complete = await rawRequest(`${service.url}${path === 'client' ? CLIENT_PATH : FEDERATION_PATH}`, {
    headers: path === 'client' ? { Host: TENANT, Authorization: `Bearer ${TOKEN}` } : { Host: TENANT, Authorization: requestHeaders.federation().split('Authorization: ')[1]!.split('\r\n')[0]! },
  });
  expect(complete.status).toBe(200);
  expect(complete.body.includes(CONTENT.subarray(0, 4096))).toBe(true);
  // Streamed from the file, the multipart body's length is still known beforehand.
  expect(Number(complete.headers['content-length'])).toBe(complete.body.length);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const baseline = openDescriptors();

  await abortMany(path);
  expect(await settledDescriptors(baseline)).toBeLessThanOrEqual(baseline);
  expect(problems()).toEqual([]);
}, 300_000);
