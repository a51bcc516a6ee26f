// A remote thumbnail's type comes from its own first bytes (real images made with sharp), whatever the body's
// chunking: the spec's types pass with every byte kept in order, anything else is refused and its body destroyed.
import { PassThrough, Readable } from 'node:stream';
import sharp from 'sharp';
import { sniffThumbnail } from '../../src/media/remote-sniff.js';
import { patternBytes } from '../helpers/media-fixtures.js';

/** `bytes` as a stream of `size`-byte chunks. */
function chunked(bytes: Buffer, size: number): Readable {
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < bytes.length; offset += size) chunks.push(bytes.subarray(offset, offset + size));
  return Readable.from(chunks, { objectMode: false });
}

async function collect(chunks: AsyncIterable<Buffer>): Promise<Buffer> {
  const all: Buffer[] = [];
  for await (const chunk of chunks) all.push(chunk);
  return Buffer.concat(all);
}

const image = (format: 'png' | 'jpeg' | 'gif' | 'webp' | 'tiff', size = 64) =>
  sharp(patternBytes(size * size * 3, 5), { raw: { width: size, height: size, channels: 3 } }).toFormat(format).toBuffer();

describe('sniffThumbnail', () => {
  test.each([['png', 'image/png'], ['jpeg', 'image/jpeg'], ['gif', 'image/gif'], ['webp', 'image/webp']] as const)(
    'a %s, in 100-byte chunks, is typed by its bytes and kept whole', async (format, type) => {
      const bytes = await image(format, 256);
      expect(bytes.length).toBeGreaterThan(4100 * 2);
      const sniffed = await sniffThumbnail(chunked(bytes, 100));
      expect(sniffed.contentType).toBe(type);
      expect((await collect(sniffed.chunks)).equals(bytes)).toBe(true);
    },
  );

  test('the type is known once the sniffed size has come, without waiting for the rest of the body', async () => {
    const bytes = await image('png', 256);
    const body = new PassThrough();
    body.write(bytes.subarray(0, 4100));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('waited for the rest of the body')), 2000)));
    const sniffed = await Promise.race([sniffThumbnail(body), timeout]).finally(() => clearTimeout(timer));
    expect(sniffed.contentType).toBe('image/png');
    body.end(bytes.subarray(4100));
    expect((await collect(sniffed.chunks)).equals(bytes)).toBe(true);
  });

  test('a small image that ends before the sniffed size, in one chunk or many', async () => {
    const bytes = await image('png', 8);
    expect(bytes.length).toBeLessThan(4100);
    for (const size of [bytes.length, 7]) {
      const sniffed = await sniffThumbnail(chunked(bytes, size));
      expect(sniffed.contentType).toBe('image/png');
      expect((await collect(sniffed.chunks)).equals(bytes)).toBe(true);
    }
  });

  test.each([
    ['another image type (TIFF)', () => image('tiff')],
    ['text', async () => Buffer.from('<html>not an image</html>'.repeat(300))],
    ['nothing at all', async () => Buffer.alloc(0)],
  ])('%s is refused with 502 M_UNKNOWN and its body destroyed', async (_, make) => {
    const body = chunked(await make(), 1000);
    await expect(sniffThumbnail(body)).rejects.toMatchObject({
      status: 502, errcode: 'M_UNKNOWN', message: 'The origin server answered the thumbnail with content that is not a JPEG, PNG, APNG, GIF or WebP image',
    });
    expect(body.destroyed).toBe(true);
  });
});
