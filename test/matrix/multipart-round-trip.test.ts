// Multipart writer and reader together: byte-exact round trips, over HTTP too, and streaming in bounded memory.
import { createHash } from 'node:crypto';
import { createServer, get as httpGet, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { generateBoundary, multipartContentType, multipartMixedParts, multipartMixedStream } from '../../src/matrix/multipart.js';
import { readMultipartMixed } from '../../src/matrix/multipart-reader.js';
import { B, CT } from '../helpers/multipart.js';
import { chunked, collect, once } from '../helpers/streams.js';
import { createPrng, type Prng } from './prng.js';

/** Binary content rich in the byte sequences a delimiter search can trip on. */
function trickyContent(prng: Prng, boundary: string, length: number): Buffer {
  const pieces = [
    Buffer.from('\r\n'),
    Buffer.from('\n'),
    Buffer.from('\r'),
    Buffer.from('--'),
    Buffer.from(`\r\n--${boundary.slice(0, -1)}`),
    Buffer.from(`\n--${boundary}X`),
    Buffer.from(`--${boundary}--`), // only a delimiter after a line break; here it follows random bytes
    Buffer.from(`\r\n--${boundary.slice(0, prng.int(1, boundary.length))}`),
  ];
  const out: Buffer[] = [];
  let size = 0;
  while (size < length) {
    const piece = prng.next() < 0.5 ? prng.bytes(prng.int(1, 40)) : prng.pick(pieces);
    out.push(piece);
    size += piece.length;
  }
  const content = Buffer.concat(out).subarray(0, length).toString('latin1');
  // Keep the writer's promise that the content holds no delimiter: "\n--boundary" then "--", or padding and a
  // line end. The content starts a line too: like Go's reader, ours takes "--boundary" there as an empty part.
  const delimiter = new RegExp(`\n--${boundary.replace(/[-\\^$*+?.()|[\]{}]/g, '\\$&')}(?=--|[ \t]*\r?\n|[ \t]*$)`, 'g');
  return Buffer.from(`\n${content}`.replace(delimiter, `\n-_${boundary}`).slice(1), 'latin1');
}

describe('multipart: writer → reader round trips', () => {
  test('200 random bodies with random chunkings come back byte for byte', async () => {
    const prng = createPrng(2046);
    for (let round = 0; round < 200; round++) {
      const boundary = round % 3 === 0 ? generateBoundary() : prng.pick(['a', '--', 'x-y', B]);
      const content = trickyContent(prng, boundary, prng.int(0, 3000));
      const headers = { 'Content-Type': 'application/octet-stream', 'Content-Disposition': `attachment; filename="r${round}.bin"` };
      const written = await collect(multipartMixedParts(boundary, { round }, { headers, body: chunked(content, () => prng.int(1, 500)) }));
      const sizes = [() => 1, () => prng.int(1, 8), () => prng.int(1, 300), () => written.length][round % 4]!;
      const response = await readMultipartMixed(chunked(written, sizes), multipartContentType(boundary));
      expect(response.metadata).toEqual({ round });
      expect(response.headers['content-disposition']).toBe(headers['Content-Disposition']);
      const read = await collect(response.body);
      if (!read.equals(content)) throw new Error(`round ${round}: ${content.length} bytes in, ${read.length} out`);
    }
  });

  test('every split point of a small body gives the same result', async () => {
    const content = Buffer.from(`a\r\n--${B}Z\r\n\r\n--\r\nb`);
    const written = await collect(multipartMixedParts(B, {}, { headers: { 'Content-Type': 'text/plain' }, body: once(content) }));
    for (let split = 0; split <= written.length; split++) {
      async function* twoPieces(): AsyncGenerator<Buffer> {
        yield written.subarray(0, split);
        yield written.subarray(split);
      }
      const response = await readMultipartMixed(twoPieces(), CT);
      expect((await collect(response.body)).equals(content)).toBe(true);
    }
  });

  test('the Location form round-trips', async () => {
    const written = multipartMixedParts(B, {}, { location: 'https://cdn.example/a?b=c' });
    const response = await readMultipartMixed(written, CT);
    expect(response.location).toBe('https://cdn.example/a?b=c');
    expect((await collect(response.body)).length).toBe(0);
  });

  test('over a real loopback HTTP connection', async () => {
    const content = createPrng(80).bytes(300_000);
    const server = createServer((_req, res) => {
      const boundary = generateBoundary();
      res.writeHead(200, { 'Content-Type': multipartContentType(boundary) });
      void pipeline(multipartMixedStream(boundary, {}, { headers: { 'Content-Type': 'image/png' }, body: chunked(content, () => 10_000) }), res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const res = await new Promise<IncomingMessage>((resolve, reject) => httpGet({ host: '127.0.0.1', port, path: '/' }, resolve).on('error', reject));
      const response = await readMultipartMixed(res, res.headers['content-type']!);
      expect(response.headers['content-type']).toBe('image/png');
      expect((await collect(response.body)).equals(content)).toBe(true);
    } finally {
      server.close();
    }
  });
});

describe('multipart: streaming with bounded memory', () => {
  test('50 MiB pass through writer and reader while at most a few chunks are in flight', async () => {
    const CHUNK = 64 * 1024;
    const TOTAL = 50 * 1024 * 1024;
    const block = createPrng(50).bytes(CHUNK);
    let produced = 0;
    let consumed = 0;
    let maxInFlight = 0;
    const sourceHash = createHash('sha256');
    async function* media(): AsyncGenerator<Buffer> {
      for (let index = 0; produced < TOTAL; index++) {
        const chunk = Buffer.from(block);
        chunk.writeUInt32BE(index, 0);
        chunk.write(`\r\n--${B}`.slice(0, index % 20), 8, 'latin1'); // near-delimiters at chunk edges too
        sourceHash.update(chunk);
        produced += chunk.length;
        maxInFlight = Math.max(maxInFlight, produced - consumed);
        yield chunk;
      }
    }
    const body = multipartMixedParts(B, {}, { headers: { 'Content-Type': 'application/octet-stream' }, body: media() });
    const response = await readMultipartMixed(body, CT);
    const sinkHash = createHash('sha256');
    let reads = 0;
    for await (const chunk of response.body) {
      sinkHash.update(chunk as Buffer);
      consumed += (chunk as Buffer).length;
      if (++reads % 16 === 0) await new Promise((resolve) => setImmediate(resolve)); // a slower consumer
    }
    expect(consumed).toBe(TOTAL);
    expect(sinkHash.digest('hex')).toBe(sourceHash.digest('hex'));
    expect(maxInFlight).toBeLessThanOrEqual(4 * CHUNK);
  });

  test('destroying the body stops reading and releases the source', async () => {
    let released = false;
    let pulls = 0;
    async function* source(): AsyncGenerator<Buffer> {
      try {
        yield Buffer.from(`--${B}\r\n\r\n{}\r\n--${B}\r\n\r\n`);
        for (;;) {
          pulls++;
          yield Buffer.alloc(64 * 1024, 0x61);
        }
      } finally {
        released = true;
      }
    }
    const response = await readMultipartMixed(source(), CT);
    const iterator = response.body[Symbol.asyncIterator]();
    await iterator.next();
    response.body.destroy();
    await new Promise((resolve) => setImmediate(resolve));
    const pullsAtDestroy = pulls;
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(released).toBe(true);
    expect(pulls).toBe(pullsAtDestroy);
    expect(pulls).toBeLessThan(5);
  });

  test('a Readable source is destroyed when the reader fails', async () => {
    const source = Readable.from([Buffer.from(`--${B}\r\nContent-Type: text/html\r\n\r\n{}`)], { objectMode: false });
    await expect(readMultipartMixed(source, CT)).rejects.toThrow(/application\/json/);
    expect(source.destroyed).toBe(true);
  });
});
