// Which thumbnail answers a request (client-server API "Thumbnails"): never smaller than asked unless the
// original makes that impossible (then the original itself), crops in the aspect ratio asked, and the
// configured sizes bounding the work an anonymous request can cause.
import type { ThumbnailSize } from '../config/config.js';
import type { ThumbnailMethod } from '../matrix/thumbnail-spec.js';

export interface WantedSize {
  width: number;
  height: number;
  method: ThumbnailMethod;
}

/** The source as displayed (EXIF orientation applied). */
export interface SourceSize {
  width: number;
  height: number;
}

/**
 * True when no thumbnail could be larger than the original in what was asked: `scale` asks for at least
 * one side reaching the box, so an original inside the box is it; `crop` asks for the box's aspect ratio
 * at least as large as the box, impossible (without upscaling) once a side of the original is shorter.
 */
export function originalIsNoLarger(source: SourceSize, wanted: WantedSize): boolean {
  const inside = source.width <= wanted.width && source.height <= wanted.height;
  if (wanted.method === 'scale') return inside;
  return inside || source.width < wanted.width || source.height < wanted.height;
}

/**
 * The size to generate. `crop`: the requested aspect ratio inscribed in each configured size (any method),
 * the smallest that covers the request, else the largest. `scale`: the smallest configured scale box whose
 * output (the source fitted inside it, never enlarged) covers the request's, else the largest; without the
 * source's size, the smallest box at least as large as the request.
 */
export function chooseThumbnailSize(sizes: ThumbnailSize[], wanted: WantedSize, source?: SourceSize): ThumbnailSize {
  if (wanted.method === 'crop') {
    const boxes = dedupe(sizes.map((s) => inscribe(s, wanted)));
    return smallestCovering(boxes, (box) => box.width >= wanted.width && box.height >= wanted.height);
  }
  const scaleSizes = sizes.filter((s) => s.method === 'scale');
  const boxes = (scaleSizes.length > 0 ? scaleSizes : sizes).map((s) => ({ width: s.width, height: s.height, method: 'scale' as const }));
  if (source === undefined) return smallestCovering(boxes, (box) => box.width >= wanted.width && box.height >= wanted.height);
  const needed = fitFactor(wanted, source);
  return smallestCovering(boxes, (box) => fitFactor(box, source) >= needed);
}

/** The exact requested size where dynamic sizing may make it: within the largest configured width and height. */
export function dynamicSize(sizes: ThumbnailSize[], wanted: WantedSize): ThumbnailSize | undefined {
  const maxWidth = Math.max(...sizes.map((s) => s.width));
  const maxHeight = Math.max(...sizes.map((s) => s.height));
  if (wanted.width > maxWidth || wanted.height > maxHeight) return undefined;
  return { width: wanted.width, height: wanted.height, method: wanted.method };
}

/** How much a source fitted inside `box` is scaled (1 at most: never enlarged). */
function fitFactor(box: { width: number; height: number }, source: SourceSize): number {
  return Math.min(box.width / source.width, box.height / source.height, 1);
}

/** The largest box of the wanted aspect ratio inside `size`. */
function inscribe(size: ThumbnailSize, wanted: WantedSize): ThumbnailSize {
  const ratio = wanted.width / wanted.height;
  if (size.width / size.height >= ratio) {
    return { width: clamp(Math.round(size.height * ratio), size.width), height: size.height, method: 'crop' };
  }
  const height = clamp(Math.floor(size.width / ratio), size.height);
  return { width: clamp(Math.round(height * ratio), size.width), height, method: 'crop' };
}

const clamp = (value: number, max: number) => Math.max(1, Math.min(max, value));
const area = (s: ThumbnailSize) => s.width * s.height;

function smallestCovering(boxes: ThumbnailSize[], covers: (box: ThumbnailSize) => boolean): ThumbnailSize {
  const covering = boxes.filter(covers);
  if (covering.length > 0) return covering.reduce((a, b) => (area(b) < area(a) ? b : a));
  return boxes.reduce((a, b) => (area(b) > area(a) ? b : a));
}

function dedupe(boxes: ThumbnailSize[]): ThumbnailSize[] {
  const seen = new Map(boxes.map((b) => [`${b.width}x${b.height}`, b]));
  return [...seen.values()];
}
