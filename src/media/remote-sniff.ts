// A remote thumbnail is checked before any client sees a byte of it: its first bytes are sniffed with
// file-type, and only the spec's thumbnail types pass. The header the remote sent is not trusted.
import type { Readable } from 'node:stream';
import { fileTypeFromBuffer } from 'file-type';
import { MatrixError } from '../matrix/errors.js';

/** file-type's own "reasonable detection size". */
const SNIFF_BYTES = 4100;
/** Client-server API, thumbnail 200 Content-Type. */
const THUMBNAIL_TYPES = new Set(['image/jpeg', 'image/png', 'image/apng', 'image/gif', 'image/webp']);

export const notAThumbnail = () =>
  new MatrixError(502, 'M_UNKNOWN', 'The origin server answered the thumbnail with content that is not a JPEG, PNG, APNG, GIF or WebP image');

/** The body's sniffed type, and all of its bytes (the sniffed ones first); a body of another type is destroyed and refused. */
export async function sniffThumbnail(body: Readable): Promise<{ contentType: string; chunks: AsyncIterable<Buffer> }> {
  const iterator = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const head: Buffer[] = [];
  let size = 0;
  let ended = false;
  while (size < SNIFF_BYTES) {
    const next = await iterator.next();
    if (next.done) {
      ended = true;
      break;
    }
    head.push(next.value);
    size += next.value.length;
  }
  const sniffed = await fileTypeFromBuffer(Buffer.concat(head));
  if (!sniffed || !THUMBNAIL_TYPES.has(sniffed.mime)) {
    body.destroy();
    throw notAThumbnail();
  }
  async function* all(): AsyncGenerator<Buffer> {
    yield* head;
    if (ended) return;
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
  }
  return { contentType: sniffed.mime, chunks: all() };
}
