import { createHash } from 'node:crypto';
import { createServer, get as httpGet, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  generateBoundary,
  multipartContentType,
  multipartMixedParts,
  multipartMixedStream,
  MultipartError,
  parseMultipartBoundary,
  type MediaPart,
} from '../../src/matrix/multipart.js';
import { readMultipartMixed } from '../../src/matrix/multipart-reader.js';
import { createPrng, type Prng } from './prng.js';

const B = 'gc0p4Jq0M2Yt08jU534c0p';
const CT = `multipart/mixed; boundary=${B}`;

async function collect(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

async function* chunked(bytes: Buffer, size: (remaining: number) => number): AsyncGenerator<Buffer> {
  for (let offset = 0; offset < bytes.length; ) {
    const length = Math.max(1, Math.min(size(bytes.length - offset), bytes.length - offset));
    yield Buffer.from(bytes.subarray(offset, offset + length)); // a fresh copy, as a socket would hand over
    offset += length;
  }
}

async function* once(bytes: Buffer): AsyncGenerator<Buffer> {
  yield bytes;
}

/** Reads a whole body given as text and returns everything the reader exposes, the media as a string. */
async function readText(body: string, contentType = CT, chunkSize?: number) {
  const bytes = Buffer.from(body, 'utf8');
  const source = chunkSize === undefined ? once(bytes) : chunked(bytes, () => chunkSize);
  const response = await readMultipartMixed(source, contentType);
  return { ...response, media: (await collect(response.body)).toString('utf8') };
}

async function errorOf(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection');
}

describe('parseMultipartBoundary', () => {
  test.each([
    [`multipart/mixed; boundary=${B}`, B],
    [`multipart/mixed;boundary=${B}`, B],
    [`Multipart/Mixed; BOUNDARY=${B}`, B],
    [`multipart/mixed; charset=utf-8; boundary="${B}"`, B],
    [`multipart/mixed; boundary="with space:and/slash?"`, 'with space:and/slash?'],
    [`multipart/mixed; boundary="a\\:b"; other=x`, 'a:b'],
    [`multipart/mixed ; boundary = ${B} `, B],
    [`multipart/mixed; boundary=${'x'.repeat(70)}`, 'x'.repeat(70)],
  ])('%s', (contentType, boundary) => {
    expect(parseMultipartBoundary(contentType)).toBe(boundary);
  });

  test.each([
    ['not multipart', 'application/json', /expected multipart\/mixed/],
    ['another multipart type', `multipart/form-data; boundary=${B}`, /expected multipart\/mixed/],
    ['no boundary', 'multipart/mixed', /no boundary/],
    ['no boundary among other parameters', 'multipart/mixed; charset=utf-8', /no boundary/],
    ['an empty boundary', 'multipart/mixed; boundary=', /1–70/],
    ['a boundary of 71 characters', `multipart/mixed; boundary=${'x'.repeat(71)}`, /1–70/],
    ['a boundary ending in a space', 'multipart/mixed; boundary="abc "', /1–70/],
    ['a boundary with a forbidden character', 'multipart/mixed; boundary=a*b', /1–70/],
    ['two boundaries', `multipart/mixed; boundary=a; boundary=b`, /two boundary/],
    ['garbage parameters', 'multipart/mixed; ===', /malformed parameters/],
    ['an unterminated quote', 'multipart/mixed; boundary="abc', /malformed parameters/],
  ])('%s is refused', (_name, contentType, message) => {
    expect(() => parseMultipartBoundary(contentType)).toThrow(MultipartError);
    expect(() => parseMultipartBoundary(contentType)).toThrow(message);
  });
});

describe('generateBoundary and multipartContentType', () => {
  test('boundaries are random, valid and round-trip through the Content-Type', () => {
    const boundaries = new Set(Array.from({ length: 50 }, generateBoundary));
    expect(boundaries.size).toBe(50);
    for (const boundary of boundaries) expect(parseMultipartBoundary(multipartContentType(boundary))).toBe(boundary);
  });

  test('boundaries that are not tokens are quoted', () => {
    expect(multipartContentType('a:b')).toBe('multipart/mixed; boundary="a:b"');
    expect(() => multipartContentType('')).toThrow(MultipartError);
  });
});

describe('multipart writer', () => {
  test('writes the RFC 2046 layout of the spec: JSON part, media part, close delimiter', async () => {
    const media: MediaPart = {
      headers: { 'Content-Type': 'image/png', 'Content-Disposition': 'inline; filename="cat.png"' },
      body: once(Buffer.from('PNGDATA')),
    };
    const written = (await collect(multipartMixedParts(B, {}, media))).toString();
    expect(written).toBe(
      `\r\n--${B}\r\nContent-Type: application/json\r\n\r\n{}\r\n` +
        `--${B}\r\nContent-Type: image/png\r\nContent-Disposition: inline; filename="cat.png"\r\n\r\nPNGDATA\r\n` +
        `--${B}--\r\n`,
    );
  });

  test('writes the redirect form: a Location header and an empty body', async () => {
    const written = (await collect(multipartMixedParts(B, {}, { location: 'https://cdn.example/x?sig=1' }))).toString();
    expect(written).toBe(`\r\n--${B}\r\nContent-Type: application/json\r\n\r\n{}\r\n--${B}\r\nLocation: https://cdn.example/x?sig=1\r\n\r\n\r\n--${B}--\r\n`);
  });

  test('sends the JSON part before pulling any media', async () => {
    let pulled = false;
    async function* media(): AsyncGenerator<Buffer> {
      pulled = true;
      yield Buffer.from('x');
    }
    const parts = multipartMixedParts(B, {}, { headers: {}, body: media() });
    const first = await parts.next();
    expect(first.value.toString()).toContain('{}');
    expect(pulled).toBe(false);
  });

  test('refuses header injection and bad boundaries', async () => {
    const bad = (media: MediaPart, boundary = B) => errorOf(collect(multipartMixedParts(boundary, {}, media)));
    expect((await bad({ headers: { 'Content-Type': 'a\r\nX-Evil: 1' }, body: once(Buffer.alloc(0)) })).message).toMatch(/line break/);
    expect((await bad({ headers: { 'Bad Name': 'x' }, body: once(Buffer.alloc(0)) })).message).toMatch(/invalid part header name/);
    expect((await bad({ location: 'https://x\n\r\n--evil' })).message).toMatch(/line break/);
    expect((await bad({ location: 'https://x' }, 'x'.repeat(71))).message).toMatch(/1–70/);
  });
});

describe('multipart reader: lenient input', () => {
  const json = 'Content-Type: application/json';

  test.each<[string, string, string | undefined, string]>([
    ['strict CRLF form', `--${B}\r\n${json}\r\n\r\n{}\r\n--${B}\r\nContent-Type: text/plain\r\n\r\nhello\r\n--${B}--\r\n`, CT, 'hello'],
    ['a leading CRLF', `\r\n--${B}\r\n${json}\r\n\r\n{}\r\n--${B}\r\nContent-Type: text/plain\r\n\r\nhello\r\n--${B}--\r\n`, CT, 'hello'],
    ['preamble text', `This is a preamble.\r\nIt has --lines-- too.\r\n--${B}\r\n${json}\r\n\r\n{}\r\n--${B}\r\n\r\nhello\r\n--${B}--`, CT, 'hello'],
    ['LF-only line ends', `--${B}\n${json}\n\n{}\n--${B}\nContent-Type: text/plain\n\nhello\n--${B}--\n`, CT, 'hello'],
    ['a quoted boundary', `--${B}\r\n${json}\r\n\r\n{}\r\n--${B}\r\n\r\nhello\r\n--${B}--`, `multipart/mixed; boundary="${B}"`, 'hello'],
    ['no final "--"', `--${B}\r\n${json}\r\n\r\n{}\r\n--${B}\r\n\r\nhello\r\n--${B}`, CT, 'hello'],
    ['no final "--" but a line end', `--${B}\r\n${json}\r\n\r\n{}\r\n--${B}\r\n\r\nhello\r\n--${B}\r\n`, CT, 'hello'],
    ['a blank line after {} (MSC3916 example)', `--${B}\r\n${json}\r\n\r\n{}\r\n\r\n--${B}\r\n\r\nhello\r\n--${B}--`, CT, 'hello'],
    ['transport padding after boundaries', `--${B} \t\r\n${json}\r\n\r\n{}\r\n--${B}  \r\n\r\nhello\r\n--${B}--  \r\n`, CT, 'hello'],
    ['an epilogue', `--${B}\r\n${json}\r\n\r\n{}\r\n--${B}\r\n\r\nhello\r\n--${B}--\r\nepilogue --${B}\r\n`, CT, 'hello'],
    ['a third part, ignored', `--${B}\r\n${json}\r\n\r\n{}\r\n--${B}\r\n\r\nhello\r\n--${B}\r\n\r\nthird\r\n--${B}--`, CT, 'hello'],
    ['a look-alike boundary inside the media', `--${B}\r\n${json}\r\n\r\n{}\r\n--${B}\r\n\r\na\r\n--${B}X\r\n--${B}-x\r\n--${B} y\r\nb\r\n--${B}--`, CT, `a\r\n--${B}X\r\n--${B}-x\r\n--${B} y\r\nb`],
    ['empty media', `--${B}\r\n${json}\r\n\r\n{}\r\n--${B}\r\n\r\n\r\n--${B}--`, CT, ''],
    ['media that is only line ends', `--${B}\r\n${json}\r\n\r\n{}\r\n--${B}\r\n\r\n\r\n\n\r\n\r\n--${B}--`, CT, '\r\n\n\r\n'],
    ['a JSON part without Content-Type', `--${B}\r\n\r\n{}\r\n--${B}\r\n\r\nhello\r\n--${B}--`, CT, 'hello'],
    ['a JSON Content-Type with parameters', `--${B}\r\nContent-Type: Application/JSON; charset=utf-8\r\n\r\n{}\r\n--${B}\r\n\r\nhello\r\n--${B}--`, CT, 'hello'],
  ])('%s', async (_name, body, contentType, media) => {
    for (const chunkSize of [undefined, 1, 2, 3, 7, 64]) {
      const read = await readText(body, contentType, chunkSize);
      expect(read.metadata).toEqual({});
      expect(read.media).toBe(media);
    }
  });

  test('header names in any case, values trimmed, folded lines joined', async () => {
    const body = `--${B}\r\nCONTENT-TYPE: application/json\r\n\r\n{"a":1}\r\n--${B}\r\ncontent-TYPE:  image/png \r\nContent-Disposition: inline;\r\n filename="a.png"\r\n\r\nX\r\n--${B}--`;
    const read = await readText(body);
    expect(read.metadata).toEqual({ a: 1 });
    expect(read.headers['content-type']).toBe('image/png');
    expect(read.headers['content-disposition']).toBe('inline; filename="a.png"');
    expect(read.location).toBeUndefined();
  });

  test('the Location form exposes the URL and an empty body, even with no line before the close delimiter', async () => {
    for (const ending of [`\r\n\r\n\r\n--${B}--`, `\r\n\r\n--${B}--`, `\n\n--${B}`]) {
      const read = await readText(`--${B}\r\n\r\n{}\r\n--${B}\r\nlocation: https://cdn.example/m?sig=a${ending}`, CT, 1);
      expect(read.location).toBe('https://cdn.example/m?sig=a');
      expect(read.media).toBe('');
    }
  });

  test('a part header named __proto__ is just a header', async () => {
    const read = await readText(`--${B}\r\n\r\n{}\r\n--${B}\r\n__proto__: x\r\n\r\nhello\r\n--${B}--`);
    expect(read.headers.__proto__).toBe('x');
    expect(read.media).toBe('hello');
  });
});

describe('multipart reader: malformed input fails clearly', () => {
  const json = 'Content-Type: application/json';
  const big = 'x'.repeat(70 * 1024);

  test.each<[string, string, RegExp]>([
    ['no boundary at all', 'just some text', /ended before the first boundary, before a boundary/],
    ['an empty body', '', /ended before the first boundary/],
    ['a preamble over the limit', `${big}\r\n--${B}\r\n\r\n{}\r\n--${B}\r\n\r\nx\r\n--${B}--`, /more than 16384 bytes before the first boundary/],
    ['a close delimiter first', `--${B}--\r\n`, /has no parts/],
    ['a non-JSON first part', `--${B}\r\nContent-Type: image/png\r\n\r\n{}\r\n--${B}\r\n\r\nx\r\n--${B}--`, /first part must be application\/json, not "image\/png"/],
    ['invalid JSON', `--${B}\r\n${json}\r\n\r\n{nope\r\n--${B}\r\n\r\nx\r\n--${B}--`, /not valid JSON/],
    ['a JSON array', `--${B}\r\n${json}\r\n\r\n[]\r\n--${B}\r\n\r\nx\r\n--${B}--`, /not a JSON object/],
    ['JSON null', `--${B}\r\n${json}\r\n\r\nnull\r\n--${B}\r\n\r\nx\r\n--${B}--`, /not a JSON object/],
    ['JSON over 64 KiB', `--${B}\r\n${json}\r\n\r\n{"a":"${big}"}\r\n--${B}\r\n\r\nx\r\n--${B}--`, /JSON part is larger than 65536 bytes/],
    ['only the JSON part', `--${B}\r\n${json}\r\n\r\n{}\r\n--${B}--\r\n`, /no media part/],
    ['the body ending in the JSON part', `--${B}\r\n${json}\r\n\r\n{"a":`, /ended inside the JSON part/],
    ['the body ending in headers', `--${B}\r\n${json}\r\n\r\n{}\r\n--${B}\r\nContent-Type: ima`, /ended inside a part header/],
    ['the body ending right after a delimiter', `--${B}\r\n${json}\r\n\r\n{}\r\n--${B}\r\n`, /ended inside a part header/],
    ['a header line without a colon', `--${B}\r\nnot a header\r\n\r\n{}\r\n--${B}\r\n\r\nx\r\n--${B}--`, /malformed header line/],
    ['a header with an empty name', `--${B}\r\n: value\r\n\r\n{}\r\n--${B}\r\n\r\nx\r\n--${B}--`, /malformed header line/],
    ['one endless header line', `--${B}\r\nX-Long: ${big}\r\n\r\n{}\r\n--${B}\r\n\r\nx\r\n--${B}--`, /headers are too large/],
    ['many headers over the limit', `--${B}\r\n${json}\r\n\r\n{}\r\n--${B}\r\n${Array.from({ length: 2000 }, (_, i) => `X-H${i}: v`).join('\r\n')}\r\n\r\nx\r\n--${B}--`, /headers are too large/],
    ['a duplicate header', `--${B}\r\n${json}\r\n\r\n{}\r\n--${B}\r\nContent-Type: a/b\r\ncontent-type: c/d\r\n\r\nx\r\n--${B}--`, /duplicate content-type header/],
  ])('%s', async (_name, body, message) => {
    for (const chunkSize of [undefined, 1, 1000]) {
      const error = await errorOf(readText(body, CT, chunkSize));
      expect(error).toBeInstanceOf(MultipartError);
      expect(error.message).toMatch(message);
    }
  });

  test('a Content-Type that is not multipart/mixed fails before anything is read', async () => {
    let pulled = false;
    async function* source(): AsyncGenerator<Buffer> {
      pulled = true;
      yield Buffer.from('x');
    }
    await expect(readMultipartMixed(source(), 'application/octet-stream')).rejects.toThrow(/expected multipart\/mixed/);
    expect(pulled).toBe(false);
  });

  test.each([
    ['no delimiter after the media', `--${B}\r\n\r\n{}\r\n--${B}\r\n\r\nhalf of the fi`],
    ['a half delimiter', `--${B}\r\n\r\n{}\r\n--${B}\r\n\r\nhalf\r\n--${B.slice(0, 5)}`],
    ['a delimiter with a single dash', `--${B}\r\n\r\n{}\r\n--${B}\r\n\r\nhalf\r\n--${B}-`],
  ])('truncated media (%s): the body stream errors instead of ending cleanly', async (_name, body) => {
    for (const chunkSize of [undefined, 1, 5]) {
      const response = await readMultipartMixed(chunked(Buffer.from(body), () => chunkSize ?? body.length), CT);
      const error = await errorOf(collect(response.body));
      expect(error).toBeInstanceOf(MultipartError);
      expect(error.message).toMatch(/ended inside the media part/);
    }
  });

  test('a failing source fails the body stream with its own error', async () => {
    async function* source(): AsyncGenerator<Buffer> {
      yield Buffer.from(`--${B}\r\n\r\n{}\r\n--${B}\r\n\r\nsome bytes and then`);
      throw new Error('connection reset');
    }
    const response = await readMultipartMixed(source(), CT);
    expect((await errorOf(collect(response.body))).message).toBe('connection reset');
  });
});

// ---- round trips -----------------------------------------------------------------------------------------

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
