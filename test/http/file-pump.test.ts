// pumpFile (src/http/file-pump.ts): a file span sent through a real loopback HTTP response with reused
// buffers: the exact bytes, inside a frame, no stale bytes from an earlier response, and clean failures.
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, get, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pumpFile } from '../../src/http/file-pump.js';
import type { BodyFrame } from '../../src/matrix/multipart.js';
import type { FileSpan } from '../../src/storage/file-spans.js';

const MiB = 1 << 20;
let dir: string;
let server: Server;
let port: number;
/** Each request's response goes to the handler the test set; the pump's outcome is recorded. */
let handle: (res: ServerResponse) => Promise<void>;
const outcomes: (Error | 'ok')[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'file-pump-'));
  server = createServer((_req, res) => {
    handle(res).then(() => outcomes.push('ok'), (error: Error) => {
      outcomes.push(error);
      res.destroy();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
});

afterAll(() => {
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  outcomes.length = 0;
});

function fileOf(name: string, bytes: Buffer): number {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return openSync(path, 'r');
}

/** Megabytes compared by digest: Jest's element-wise diff of them takes seconds. */
const digest = (bytes: Buffer) => ({ length: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') });

/** Serves `span` (closing its descriptor afterwards, as the datastore's stream does) and downloads what arrives. */
async function download(span: FileSpan, frame?: BodyFrame): Promise<Buffer> {
  handle = async (res) => {
    try {
      await pumpFile(span, res, frame);
    } finally {
      closeSync(span.fd);
    }
  };
  const res = await new Promise<IncomingMessage>((resolve, reject) => get(`http://127.0.0.1:${port}/`, { agent: false }, resolve).on('error', reject));
  const chunks: Buffer[] = [];
  res.on('data', (chunk: Buffer) => chunks.push(chunk));
  // A response cut short errs: what arrived is the result.
  await new Promise((resolve) => res.on('error', () => undefined).on('close', resolve));
  return Buffer.concat(chunks);
}

test('sends the whole file, a range of it, and a frame around it, byte for byte', async () => {
  const bytes = randomBytes(3 * MiB + 123);
  const head = Buffer.from('head:');
  const tail = Buffer.from(':tail');
  expect(digest(await download({ fd: fileOf('whole', bytes), start: 0, end: bytes.length - 1, chunkBytes: MiB }))).toEqual(digest(bytes));
  expect(digest(await download({ fd: fileOf('range', bytes), start: 1000, end: 2 * MiB + 7, chunkBytes: MiB }))).toEqual(digest(bytes.subarray(1000, 2 * MiB + 8)));
  expect(digest(await download({ fd: fileOf('framed', bytes), start: 0, end: bytes.length - 1, chunkBytes: 1 << 18 }, { head, tail })))
    .toEqual(digest(Buffer.concat([head, bytes, tail])));
  expect(await download({ fd: fileOf('empty', Buffer.alloc(0)), start: 0, end: -1, chunkBytes: MiB }, { head, tail })).toEqual(Buffer.concat([head, tail]));
  expect(outcomes).toEqual(['ok', 'ok', 'ok', 'ok']);
});

test('a reused buffer carries none of an earlier response: a shorter last read sends only its own bytes', async () => {
  const earlier = Buffer.alloc(2 * MiB, 0x61);
  expect(digest(await download({ fd: fileOf('earlier', earlier), start: 0, end: earlier.length - 1, chunkBytes: MiB }))).toEqual(digest(earlier));
  const later = Buffer.alloc(MiB + 10, 0x62);
  expect(digest(await download({ fd: fileOf('later', later), start: 0, end: later.length - 1, chunkBytes: MiB }))).toEqual(digest(later));
});

test('a file shorter than its span fails the response instead of ending it short', async () => {
  const bytes = randomBytes(MiB + 5);
  const received = await download({ fd: fileOf('short', bytes), start: 0, end: bytes.length + MiB, chunkBytes: MiB });
  expect(digest(received)).toEqual(digest(bytes));
  expect(String(outcomes[0])).toMatch(/ended before its recorded size/);
});

test('a client that leaves mid-body or before the first byte settles the pump as a premature close', async () => {
  const bytes = randomBytes(64 * MiB);
  const fd = fileOf('large', bytes);
  let cutEarly = false;
  handle = async (res) => {
    // The early cut comes while the response waits, as during a slow media lookup.
    if (cutEarly) await once(res, 'close');
    await pumpFile({ fd, start: 0, end: bytes.length - 1, chunkBytes: MiB }, res);
  };
  for (const [i, early] of [false, true].entries()) {
    cutEarly = early;
    const socket = connect(port, '127.0.0.1', () => socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    if (early) setTimeout(() => socket.destroy(), 50);
    else socket.once('data', () => socket.destroy());
    await once(socket, 'close');
    while (outcomes.length <= i) await new Promise((resolve) => setTimeout(resolve, 10));
  }
  closeSync(fd);
  expect(outcomes.map((outcome) => (outcome === 'ok' ? outcome : (outcome as NodeJS.ErrnoException).code))).toEqual(['ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_PREMATURE_CLOSE']);
});
