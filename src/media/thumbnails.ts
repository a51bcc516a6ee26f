// Thumbnails: the configured size that best serves the request, generated once with sharp and stored.
import { availableParallelism } from 'node:os';
import { Readable } from 'node:stream';
import type { Metadata, ResizeOptions } from 'sharp';
import type { ThumbnailsConfig, ThumbnailSize } from '../config/config.js';
import { mediaTypeEssence } from '../matrix/content-disposition.js';
import { MatrixError, unknown } from '../matrix/errors.js';
import type { ThumbnailSpec } from '../matrix/thumbnail-spec.js';
import type { Datastores } from '../storage/datastores.js';
import { LruCache } from '../lru-cache.js';
import type { LocalMedia, StoredMedia, WaitOptions } from './local-media.js';
import type { MediaStore, ThumbnailKey, ThumbnailRecord } from './media-store.js';
import { servableBlob, type ServableMedia } from './servable.js';
import { Semaphore, SingleFlight } from './single-flight.js';

// Decoders we trust with untrusted bytes; SVG (a renderer) and PDF are deliberately absent.
const THUMBNAILABLE_FORMATS = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif']);
const ANIMATABLE_FORMATS = new Set(['gif', 'webp']);
const EXTENSIONS: Record<string, string> = { 'image/jpeg': 'jpg', 'image/png': 'png', 'image/webp': 'webp' };

const cannotThumbnail = () => unknown(400, 'Cannot generate thumbnails for the requested content');
const tooLargeToThumbnail = () => new MatrixError(413, 'M_TOO_LARGE', 'Content is too large to thumbnail');

const FAILURE_CACHE_SIZE = 10_000;

export class Thumbnails {
  private readonly flights = new SingleFlight<ThumbnailRecord>();
  private readonly slots = new Semaphore(availableParallelism());
  /** A media ID's bytes never change, so a thumbnail that could not be made never can: not re-read, not re-decoded. */
  private readonly failures = new LruCache<string, MatrixError>(FAILURE_CACHE_SIZE);

  constructor(
    private readonly media: MediaStore,
    private readonly localMedia: LocalMedia,
    private readonly datastores: Datastores,
    private readonly settings: ThumbnailsConfig,
  ) {}

  async open(serverName: string, mediaId: string, spec: ThumbnailSpec, wait: WaitOptions): Promise<ServableMedia> {
    const source = await this.localMedia.waitFor(serverName, mediaId, wait);
    const size = chooseThumbnailSize(this.settings.sizes, spec);
    const key: ThumbnailKey = { serverName, mediaId, ...size, animated: spec.animated && this.settings.animated };
    const thumbnail = (await this.media.getThumbnail(key)) ?? (await this.generateOnce(key, source));
    const blob = { ...thumbnail, uploadName: `thumbnail.${EXTENSIONS[thumbnail.contentType] ?? 'bin'}`, storedTs: source.storedTs };
    return servableBlob(blob, this.datastores.get(thumbnail.datastoreId));
  }

  private generateOnce(key: ThumbnailKey, source: StoredMedia): Promise<ThumbnailRecord> {
    const id = JSON.stringify([key.serverName, key.mediaId, key.width, key.height, key.method, key.animated]);
    const failed = this.failures.get(id);
    if (failed) return Promise.reject(failed);
    return this.flights.run(id, () => this.slots.run(async () => {
      // Another instance (or an earlier flight) may have stored it since we looked.
      const stored = await this.media.getThumbnail(key);
      if (stored) return stored;
      const { data, contentType } = await this.render(key, source).catch((error: unknown) => {
        // Only the content's own verdicts (400, 413) are final; I/O trouble may pass.
        if (error instanceof MatrixError && error.status < 500) this.failures.set(id, error);
        throw error;
      });
      const blob = await this.datastores.forKind('thumbnails', key.serverName).writeStream(Readable.from([data]), { maxBytes: data.length });
      return this.media.insertThumbnail(key, contentType, blob);
    }));
  }

  private async render(key: ThumbnailKey, source: StoredMedia): Promise<{ data: Buffer; contentType: string }> {
    // Only declared images are read and decoded at all: anything else costs nothing to refuse.
    if (!mediaTypeEssence(source.contentType ?? '').startsWith('image/')) throw cannotThumbnail();
    if (source.size > this.settings.maxSourceBytes) throw tooLargeToThumbnail();
    // sharp buffers any non-file input whole; reading it ourselves (bounded above) lets us open it twice.
    const input = await readAll(await this.datastores.get(source.datastoreId).read(source.sha256), this.settings.maxSourceBytes);
    return renderThumbnail(this.settings, key, input);
  }
}

/**
 * The smallest configured size at least as large as asked, preferring the asked method; if none is
 * large enough, the largest (configured sizes bound the work an anonymous request can cause).
 */
export function chooseThumbnailSize(sizes: ThumbnailSize[], wanted: { width: number; height: number; method: 'crop' | 'scale' }): ThumbnailSize {
  const area = (s: ThumbnailSize) => s.width * s.height;
  const smallest = (list: ThumbnailSize[]) => list.reduce((a, b) => (area(b) < area(a) ? b : a));
  const largest = (list: ThumbnailSize[]) => list.reduce((a, b) => (area(b) > area(a) ? b : a));
  const bigEnough = sizes.filter((s) => s.width >= wanted.width && s.height >= wanted.height);
  const sameMethod = (list: ThumbnailSize[]) => list.filter((s) => s.method === wanted.method);
  if (sameMethod(bigEnough).length > 0) return smallest(sameMethod(bigEnough));
  if (bigEnough.length > 0) return smallest(bigEnough);
  return largest(sameMethod(sizes).length > 0 ? sameMethod(sizes) : sizes);
}

async function renderThumbnail(limits: ThumbnailsConfig, key: ThumbnailKey, input: Buffer): Promise<{ data: Buffer; contentType: string }> {
  const options = { limitInputPixels: limits.maxPixels, failOn: 'error' as const, autoOrient: true };
  // Loaded on the first thumbnail: libvips costs about 32 MiB that an instance serving none never needs.
  const { default: sharp } = await import('sharp');
  let metadata: Metadata;
  try {
    metadata = await sharp(input, options).metadata();
  } catch (error) {
    throw decodeError(error);
  }
  if (!THUMBNAILABLE_FORMATS.has(metadata.format)) throw cannotThumbnail();
  const animated = key.animated && ANIMATABLE_FORMATS.has(metadata.format) && (metadata.pages ?? 1) > 1;
  // An animation decodes every frame, so the pixel limit counts them all.
  if (metadata.width * metadata.height * (animated ? metadata.pages! : 1) > limits.maxPixels) throw tooLargeToThumbnail();
  const frame = animated
    ? { width: metadata.width, height: metadata.height }
    : { width: metadata.autoOrient.width, height: metadata.autoOrient.height };
  const image = sharp(input, { ...options, animated }).resize(resizeOptions(key, frame));
  const [format, contentType] = animated ? ['webp', 'image/webp'] as const
    : metadata.format === 'jpeg' ? ['jpeg', 'image/jpeg'] as const : ['png', 'image/png'] as const;
  try {
    return { data: await image.toFormat(format).toBuffer(), contentType };
  } catch (error) {
    throw decodeError(error);
  }
}

function decodeError(error: unknown): MatrixError {
  return /pixel limit/i.test((error as Error).message) ? tooLargeToThumbnail() : cannotThumbnail();
}

/** Never upscales: `scale` fits inside the box; `crop` fills it, or crops a smaller source to the box's aspect ratio. */
function resizeOptions(box: { width: number; height: number; method: 'crop' | 'scale' }, frame: { width: number; height: number }): ResizeOptions {
  if (box.method === 'scale') return { width: box.width, height: box.height, fit: 'inside', withoutEnlargement: true };
  if (frame.width >= box.width && frame.height >= box.height) return { width: box.width, height: box.height, fit: 'cover' };
  const ratio = box.width / box.height;
  return {
    width: Math.max(1, Math.min(frame.width, Math.round(frame.height * ratio))),
    height: Math.max(1, Math.min(frame.height, Math.round(frame.width / ratio))),
    fit: 'cover',
  };
}

async function readAll(stream: Readable, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    total += (chunk as Buffer).length;
    if (total > maxBytes) {
      stream.destroy();
      throw tooLargeToThumbnail();
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
