// The multipart/mixed reader (src/matrix/multipart-reader.ts): what it tolerates and what it refuses, and how.
import { Readable } from 'node:stream';
import { MultipartError } from '../../src/matrix/multipart.js';
import { readMultipartMixed } from '../../src/matrix/multipart-reader.js';
import { B, CT } from '../helpers/multipart.js';
import { chunked, collect, failure as errorOf, once } from '../helpers/streams.js';

/** Reads a whole body given as text and returns everything the reader exposes, the media as a string. */
async function readText(body: string, contentType = CT, chunkSize?: number) {
  const bytes = Buffer.from(body, 'utf8');
  const source = chunkSize === undefined ? once(bytes) : chunked(bytes, () => chunkSize);
  const response = await readMultipartMixed(source, contentType);
  return { ...response, media: (await collect(response.body)).toString('utf8') };
}

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
    ['a JSON number', `--${B}\r\n${json}\r\n\r\n1\r\n--${B}\r\n\r\nx\r\n--${B}--`, /not a JSON object/],
    ['a JSON string', `--${B}\r\n${json}\r\n\r\n"{}"\r\n--${B}\r\n\r\nx\r\n--${B}--`, /not a JSON object/],
    ['JSON over 64 KiB', `--${B}\r\n${json}\r\n\r\n{"a":"${big}"}\r\n--${B}\r\n\r\nx\r\n--${B}--`, /JSON part is larger than 65536 bytes/],
    ['only the JSON part', `--${B}\r\n${json}\r\n\r\n{}\r\n--${B}--\r\n`, /no media part/],
    ['a first boundary ending the input, without "--"', `--${B}`, /has no parts/],
    ['a first boundary and padding ending the input', `--${B}  `, /has no parts/],
    ['only the JSON part, its boundary ending the input without "--"', `--${B}\r\n${json}\r\n\r\n{}\r\n--${B}`, /no media part/],
    ['the body ending in the JSON part', `--${B}\r\n${json}\r\n\r\n{"a":`, /ended inside the JSON part/],
    ['the body ending in headers', `--${B}\r\n${json}\r\n\r\n{}\r\n--${B}\r\nContent-Type: ima`, /ended inside a part header/],
    ['the body ending right after a delimiter', `--${B}\r\n${json}\r\n\r\n{}\r\n--${B}\r\n`, /ended inside a part header/],
    ['a header line without a colon', `--${B}\r\nnot a header\r\n\r\n{}\r\n--${B}\r\n\r\nx\r\n--${B}--`, /malformed header line/],
    ['a header line of one token and no colon', `--${B}\r\nContent-Type\r\n\r\n{}\r\n--${B}\r\n\r\nx\r\n--${B}--`, /malformed header line/],
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

describe('multipart reader: edges a one-line change would pass', () => {
  test('a folded line may start with a tab; a first header line starting with a space is a header of its own', async () => {
    const read = await readText(`--${B}\r\n\r\n{}\r\n--${B}\r\n X-First: a\r\nX-Folded: b\r\n\tc\r\n\r\nhello\r\n--${B}--`);
    expect({ ...read.headers }).toEqual({ 'x-first': 'a', 'x-folded': 'b c' });
    expect(read.media).toBe('hello');
  });

  test('chunks that are Uint8Array views, not Buffers, are read at their offsets', async () => {
    const bytes = Buffer.from(`junk--${B}\r\n\r\n{}\r\n--${B}\r\n\r\nhello\r\n--${B}--junk`, 'latin1');
    async function* views(): AsyncGenerator<Uint8Array> {
      for (let at = 4; at < bytes.length - 4; at += 5) yield new Uint8Array(bytes.buffer, bytes.byteOffset + at, Math.min(5, bytes.length - 4 - at));
    }
    const read = await readMultipartMixed(views(), CT);
    expect((await collect(read.body)).toString('latin1')).toBe('hello');
  });

  test('a delimiter look-alike right after a chunk edge in the middle of a line is media', async () => {
    const body = Buffer.from(`--${B}\r\n\r\n{}\r\n--${B}\r\n\r\nab--${B}\r\ncd\r\n--${B}--`, 'latin1');
    const edge = body.indexOf(`ab--${B}`) + 2;
    const response = await readMultipartMixed(chunked(body, (remaining) => (remaining === body.length ? edge : remaining)), CT);
    expect((await collect(response.body)).toString('latin1')).toBe(`ab--${B}\r\ncd`);
  });

  test('a close delimiter with padding and no line end at the end of the input ends the media', async () => {
    for (const chunkSize of [undefined, 1]) expect((await readText(`--${B}\r\n\r\n{}\r\n--${B}\r\n\r\nhello\r\n--${B}  `, CT, chunkSize)).media).toBe('hello');
  });

  test('a source that throws something other than an Error fails the body with a MultipartError', async () => {
    async function* source(): AsyncGenerator<Buffer> {
      yield Buffer.from(`--${B}\r\n\r\n{}\r\n--${B}\r\n\r\nsome bytes`);
      throw 'reset'; // what a careless source may do
    }
    const response = await readMultipartMixed(source(), CT);
    const error = await errorOf(collect(response.body));
    expect(error).toBeInstanceOf(MultipartError);
    expect(error.message).toBe('reset');
  });

  test('an iterator without return() is left alone on failure: the error is the reader\'s own', async () => {
    let calls = 0;
    const chunks = [Buffer.from(`--${B}\r\nContent-Type: text/html\r\n\r\n{}`)];
    const source: AsyncIterable<Uint8Array> = { [Symbol.asyncIterator]: () => ({ next: async () => (calls++ < chunks.length ? { done: false, value: chunks[calls - 1]! } : { done: true, value: undefined }) }) };
    const error = await errorOf(readMultipartMixed(source, CT));
    expect(error).toBeInstanceOf(MultipartError);
    expect(error.message).toMatch(/application\/json/);
  });

  test('a first part of a long other type is named in the error by its first 100 characters only', async () => {
    const type = `image/${'x'.repeat(200)}`;
    const error = await errorOf(readText(`--${B}\r\nContent-Type: ${type}\r\n\r\n{}\r\n--${B}\r\n\r\nx\r\n--${B}--`));
    expect(error.message).toBe(`the first part must be application/json, not ${JSON.stringify(type.slice(0, 100))}`);
  });

  test('a source iterator is released exactly once when the media has been read', async () => {
    // The epilogue is never read: the body's end closes the source, and so does the stream's destroy after it.
    const chunks = [Buffer.from(`--${B}\r\n\r\n{}\r\n--${B}\r\n\r\nhello\r\n--${B}--\r\nepilogue`)];
    let returns = 0;
    const iterator = {
      next: async () => ({ done: false as const, value: chunks.shift() ?? Buffer.alloc(0) }),
      return: async () => {
        returns++;
        return { done: true as const, value: undefined };
      },
    };
    const response = await readMultipartMixed({ [Symbol.asyncIterator]: () => iterator }, CT);
    expect((await collect(response.body)).toString()).toBe('hello');
    await new Promise((resolve) => setImmediate(resolve));
    expect(returns).toBe(1);
  });

  test('a Readable source stalled mid-read is destroyed at once when the body is destroyed', async () => {
    const source = new Readable({ read() {} });
    source.push(`--${B}\r\n\r\n{}\r\n--${B}\r\n\r\nfirst`);
    const response = await readMultipartMixed(source, CT);
    const iterator = response.body[Symbol.asyncIterator]();
    await iterator.next();
    response.body.destroy();
    await new Promise((resolve) => setImmediate(resolve));
    expect(source.destroyed).toBe(true);
  });
});

test('chunks that each end in a line feed, part of a delimiter or a look-alike are passed on as they come, not held to the end', async () => {
  for (const tail of ['\n', `\r\n--${B.slice(0, 5)}`, `\r\n--${B}`]) {
    let produced = 0;
    let consumed = 0;
    let maxHeld = 0;
    async function* source(): AsyncGenerator<Buffer> {
      yield Buffer.from(`--${B}\r\n\r\n{}\r\n--${B}\r\n\r\n`);
      for (let i = 0; i < 100; i++) {
        const chunk = Buffer.from(`${'a'.repeat(1000)}${tail}`);
        produced += chunk.length;
        maxHeld = Math.max(maxHeld, produced - consumed);
        yield chunk;
      }
      yield Buffer.from(`z\r\n--${B}--`); // the z makes the last tail content too
    }
    const response = await readMultipartMixed(source(), CT);
    for await (const chunk of response.body) consumed += (chunk as Buffer).length;
    expect(consumed).toBe(produced + 1);
    expect(maxHeld).toBeLessThan(40_000);
  }
});
