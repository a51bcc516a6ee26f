// Reading and rendering images with sharp (libvips), within the configured byte and pixel limits.
import type { Readable } from 'node:stream';
import type { Metadata, ResizeOptions } from 'sharp';
import type { ThumbnailsConfig } from '../config/config.js';
import { MatrixError, unknown } from '../matrix/errors.js';
import type { ThumbnailKey } from './media-store.js';

// Decoders we trust with untrusted bytes; SVG (a renderer) and PDF are deliberately absent.
const THUMBNAILABLE_FORMATS = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif']);
const ANIMATABLE_FORMATS = new Set(['gif', 'webp']);
/** The spec's thumbnail types (APNG is a PNG to libvips): an original of these may be served as its own thumbnail. */
export const THUMBNAIL_TYPES: Readonly<Record<string, string>> = { jpeg: 'image/jpeg', png: 'image/png', gif: 'image/gif', webp: 'image/webp' };

export const cannotThumbnail = () => unknown(400, 'Cannot generate thumbnails for the requested content');
export const tooLargeToThumbnail = () => new MatrixError(413, 'M_TOO_LARGE', 'Content is too large to thumbnail');

/** What the source is, as displayed: its oriented size, its format and whether it is animated. */
export interface ImageInfo {
  width: number;
  height: number;
  format: string;
  animated: boolean;
}

type Limits = Pick<ThumbnailsConfig, 'maxPixels'>;

const sharpOptions = (limits: Limits) => ({ limitInputPixels: limits.maxPixels, failOn: 'error' as const, autoOrient: true });

// Loaded on the first thumbnail: libvips costs about 32 MiB that an instance serving none never needs.
const loadSharp = async () => (await import('sharp')).default;

/** `allFrames`: an animation is to be decoded whole, so the pixel limit counts every frame. */
async function metadataOf(limits: Limits, input: Buffer, allFrames: boolean): Promise<Metadata> {
  const sharp = await loadSharp();
  let metadata: Metadata;
  try {
    metadata = await sharp(input, sharpOptions(limits)).metadata();
  } catch (error) {
    throw decodeError(error);
  }
  if (!THUMBNAILABLE_FORMATS.has(metadata.format)) throw cannotThumbnail();
  const frames = allFrames && ANIMATABLE_FORMATS.has(metadata.format) ? metadata.pages ?? 1 : 1;
  if (metadata.width * metadata.height * frames > limits.maxPixels) throw tooLargeToThumbnail();
  return metadata;
}

export async function probeImage(limits: Limits, input: Buffer): Promise<ImageInfo> {
  const metadata = await metadataOf(limits, input, false);
  const animated = ANIMATABLE_FORMATS.has(metadata.format) && (metadata.pages ?? 1) > 1;
  return { width: metadata.autoOrient.width, height: metadata.autoOrient.height, format: metadata.format, animated };
}

export async function renderThumbnail(limits: Limits, key: ThumbnailKey, input: Buffer): Promise<{ data: Buffer; contentType: string }> {
  const sharp = await loadSharp();
  const metadata = await metadataOf(limits, input, key.animated);
  const animated = key.animated && ANIMATABLE_FORMATS.has(metadata.format) && (metadata.pages ?? 1) > 1;
  const frame = animated
    ? { width: metadata.width, height: metadata.height }
    : { width: metadata.autoOrient.width, height: metadata.autoOrient.height };
  const image = sharp(input, { ...sharpOptions(limits), animated }).resize(resizeOptions(key, frame));
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

export async function readAll(stream: Readable, maxBytes: number): Promise<Buffer> {
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
