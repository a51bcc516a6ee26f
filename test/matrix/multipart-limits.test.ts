// The multipart reader's limits at their exact bounds: the last accepted size and the first refused one.
import { MultipartError } from '../../src/matrix/multipart.js';
import { DEFAULT_MULTIPART_LIMITS, type MultipartLimits, readMultipartMixed } from '../../src/matrix/multipart-reader.js';
import { B, CT } from '../helpers/multipart.js';
import { chunked, collect, failure, once } from '../helpers/streams.js';

const small: MultipartLimits = { maxHeaderBytes: 100, maxJsonBytes: 120, maxPreambleBytes: 80 };
// Whole input at once, one byte at a time, and an odd size that splits every delimiter somewhere.
const CHUNK_SIZES = [undefined, 1, 7];

async function read(body: string, limits: Partial<MultipartLimits> | undefined, chunkSize: number | undefined) {
  const bytes = Buffer.from(body, 'latin1');
  const source = chunkSize === undefined ? once(bytes) : chunked(bytes, () => chunkSize);
  const response = await readMultipartMixed(source, CT, limits);
  return { ...response, media: (await collect(response.body)).toString('latin1') };
}

async function refusal(body: string, limits: Partial<MultipartLimits> | undefined, chunkSize: number | undefined): Promise<Error> {
  const error = await failure(read(body, limits, chunkSize));
  expect(error).toBeInstanceOf(MultipartError);
  return error;
}

/** A JSON object of exactly `size` bytes. */
const jsonOf = (size: number) => `{"a":"${'x'.repeat(size - 8)}"}`;

// One-byte chunks of the default sizes only add time: the small limits cover them.
describe.each<[string, Partial<MultipartLimits> | undefined, MultipartLimits, (number | undefined)[]]>([
  ['small limits', small, small, CHUNK_SIZES],
  ['the defaults', undefined, DEFAULT_MULTIPART_LIMITS, [undefined, 7]],
])('multipart limits at their bounds (%s)', (_name, limits, effective, chunkSizes) => {
  test.each(chunkSizes)('a JSON part of exactly maxJsonBytes is read; one byte more is refused (chunks of %s)', async (chunkSize) => {
    const body = (json: string) => `--${B}\r\nContent-Type: application/json\r\n\r\n${json}\r\n--${B}\r\n\r\nhello\r\n--${B}--`;
    const exact = jsonOf(effective.maxJsonBytes);
    expect(exact).toHaveLength(effective.maxJsonBytes);
    const read_ = await read(body(exact), limits, chunkSize);
    expect(read_.metadata).toEqual({ a: 'x'.repeat(effective.maxJsonBytes - 8) });
    expect(read_.media).toBe('hello');
    const over = await refusal(body(jsonOf(effective.maxJsonBytes + 1)), limits, chunkSize);
    expect(over.message).toBe(`the JSON part is larger than ${effective.maxJsonBytes} bytes`);
  });

  test.each(chunkSizes)('a preamble of exactly maxPreambleBytes is skipped; one byte more is refused (chunks of %s)', async (chunkSize) => {
    const body = (preamble: number) => `${'p'.repeat(preamble)}\r\n--${B}\r\n\r\n{}\r\n--${B}\r\n\r\nhello\r\n--${B}--`;
    expect((await read(body(effective.maxPreambleBytes), limits, chunkSize)).media).toBe('hello');
    const over = await refusal(body(effective.maxPreambleBytes + 1), limits, chunkSize);
    expect(over.message).toBe(`more than ${effective.maxPreambleBytes} bytes before the first boundary`);
  });

  test.each(chunkSizes)('a header section fits in maxHeaderBytes with its line feeds; one byte more is refused (chunks of %s)', async (chunkSize) => {
    // The line, its LF and the empty line's LF: maxHeaderBytes + 1 bytes in all is the most accepted.
    const body = (lineLength: number) => `--${B}\n\n{}\n--${B}\nX: ${'h'.repeat(lineLength - 3)}\n\nhello\n--${B}--`;
    const fits = await read(body(effective.maxHeaderBytes - 1), limits, chunkSize);
    expect(fits.headers.x).toBe('h'.repeat(effective.maxHeaderBytes - 4));
    expect(fits.media).toBe('hello');
    const over = await refusal(body(effective.maxHeaderBytes), limits, chunkSize);
    expect(over.message).toBe('multipart part headers are too large');
  });

  test.each(chunkSizes)('a header section with no line feed is refused as soon as it passes maxHeaderBytes (chunks of %s)', async (chunkSize) => {
    const body = (length: number) => `--${B}\n\n{}\n--${B}\n${'h'.repeat(length)}`;
    // Exactly the limit and no line feed: the reader waits for more, and the input ends.
    const atLimit = await refusal(body(effective.maxHeaderBytes), limits, chunkSize);
    expect(atLimit.message).toBe('the multipart body ended inside a part header');
    const over = await refusal(body(effective.maxHeaderBytes + 1), limits, chunkSize);
    expect(over.message).toBe('multipart part headers are too large');
  });
});

describe('multipart limits: transport padding after a boundary', () => {
  const body = (padding: string) => `--${B}\r\n\r\n{}\r\n--${B}\r\n\r\nhello\r\n--${B}${padding}\r\nmore\r\n--${B}--`;

  test.each(CHUNK_SIZES)('64 bytes of padding still make a delimiter (chunks of %s)', async (chunkSize) => {
    expect((await read(body(' '.repeat(64)), undefined, chunkSize)).media).toBe('hello');
    expect((await read(body(' \t'.repeat(32)), undefined, chunkSize)).media).toBe('hello');
  });

  test.each(CHUNK_SIZES)('65 bytes of padding make the line content, not a delimiter (chunks of %s)', async (chunkSize) => {
    const padding = ' '.repeat(65);
    expect((await read(body(padding), undefined, chunkSize)).media).toBe(`hello\r\n--${B}${padding}\r\nmore`);
  });

  test('a first boundary with 65 bytes of padding is not a boundary: the body has none', async () => {
    const error = await refusal(`--${B}${' '.repeat(65)}\r\n\r\n{}\r\n`, undefined, undefined);
    expect(error.message).toBe('the multipart body ended before the first boundary, before a boundary');
  });
});
