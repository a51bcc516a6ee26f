// Which configured thumbnail size serves a request (spec "Thumbnails": never smaller than asked when avoidable).
import type { ThumbnailSize } from '../../src/config/config.js';
import { chooseThumbnailSize, dynamicSize, originalIsNoLarger } from '../../src/media/thumbnail-choice.js';

const SPEC_SIZES: ThumbnailSize[] = [
  { width: 32, height: 32, method: 'crop' },
  { width: 96, height: 96, method: 'crop' },
  { width: 320, height: 240, method: 'scale' },
  { width: 640, height: 480, method: 'scale' },
  { width: 800, height: 600, method: 'scale' },
];

describe('chooseThumbnailSize', () => {
  test.each([
    [{ width: 32, height: 32, method: 'crop' }, SPEC_SIZES[0]],
    [{ width: 1, height: 1, method: 'crop' }, SPEC_SIZES[0]],
    [{ width: 96, height: 96, method: 'crop' }, SPEC_SIZES[1]],
    [{ width: 64, height: 64, method: 'scale' }, SPEC_SIZES[2]],
    [{ width: 320, height: 241, method: 'scale' }, SPEC_SIZES[3]],
    [{ width: 641, height: 10, method: 'scale' }, SPEC_SIZES[4]],
  ] as const)('%j -> %j (the smallest of its method at least as large)', (wanted, expected) => {
    expect(chooseThumbnailSize(SPEC_SIZES, wanted)).toEqual(expected);
  });

  // Spec: crop "provides an image in the aspect ratio of the sizes given", so a crop is never a scale size
  // and never a configured crop of another aspect ratio.
  test('a crop in another aspect ratio is cut at the asked ratio inside the smallest configured size covering it', () => {
    expect(chooseThumbnailSize(SPEC_SIZES, { width: 33, height: 20, method: 'crop' })).toEqual({ width: 96, height: 58, method: 'crop' });
    expect(chooseThumbnailSize(SPEC_SIZES, { width: 50, height: 10, method: 'crop' })).toEqual({ width: 95, height: 19, method: 'crop' });
  });

  test('a crop larger than every crop size is cut at its ratio inside the smallest large-enough size of any method', () => {
    expect(chooseThumbnailSize(SPEC_SIZES, { width: 200, height: 200, method: 'crop' })).toEqual({ width: 240, height: 240, method: 'crop' });
    expect(chooseThumbnailSize(SPEC_SIZES, { width: 100, height: 100, method: 'crop' })).toEqual({ width: 240, height: 240, method: 'crop' });
    expect(chooseThumbnailSize(SPEC_SIZES, { width: 500, height: 500, method: 'crop' })).toEqual({ width: 600, height: 600, method: 'crop' });
  });

  test('beyond every size: the largest scale box, or the asked ratio inside the largest size', () => {
    expect(chooseThumbnailSize(SPEC_SIZES, { width: 4000, height: 4000, method: 'scale' })).toEqual(SPEC_SIZES[4]);
    expect(chooseThumbnailSize(SPEC_SIZES, { width: 4000, height: 4000, method: 'crop' })).toEqual({ width: 600, height: 600, method: 'crop' });
    expect(chooseThumbnailSize([SPEC_SIZES[0]!, SPEC_SIZES[2]!], { width: 900, height: 900, method: 'crop' })).toEqual({ width: 240, height: 240, method: 'crop' });
  });

  test('scale with the source known: the smallest box whose fitted result covers the fitted request', () => {
    const source = { width: 1000, height: 500 };
    // 700x100 asks for 200x100 of this source; 320x240 gives 320x160.
    expect(chooseThumbnailSize(SPEC_SIZES, { width: 700, height: 100, method: 'scale' }, source)).toEqual(SPEC_SIZES[2]);
    // 2000x400 asks for 800x400: only 800x600 gives that much.
    expect(chooseThumbnailSize(SPEC_SIZES, { width: 2000, height: 400, method: 'scale' }, source)).toEqual(SPEC_SIZES[4]);
    // Without the source a box must hold the request itself.
    expect(chooseThumbnailSize(SPEC_SIZES, { width: 700, height: 100, method: 'scale' })).toEqual(SPEC_SIZES[4]);
  });

  test('the result always satisfies the request when some size can', () => {
    for (let w = 1; w <= 900; w += 37) {
      for (let h = 1; h <= 700; h += 29) {
        for (const method of ['crop', 'scale'] as const) {
          const chosen = chooseThumbnailSize(SPEC_SIZES, { width: w, height: h, method });
          const possible = SPEC_SIZES.some((s) => s.width >= w && s.height >= h);
          if (possible) expect(chosen.width >= w && chosen.height >= h).toBe(true);
          // A crop is in the asked aspect ratio, to the pixel.
          if (method === 'crop') expect(Math.abs(chosen.width * h - chosen.height * w)).toBeLessThanOrEqual(Math.max(w, h));
          expect(chosen.method).toBe(method);
        }
      }
    }
  });

  test('the original is no larger than asked: inside a scale box; for crop, a side shorter than asked', () => {
    const source = { width: 1000, height: 500 };
    expect(originalIsNoLarger(source, { width: 2000, height: 2000, method: 'scale' })).toBe(true);
    expect(originalIsNoLarger(source, { width: 1000, height: 500, method: 'scale' })).toBe(true);
    expect(originalIsNoLarger(source, { width: 2000, height: 400, method: 'scale' })).toBe(false);
    expect(originalIsNoLarger(source, { width: 2000, height: 2000, method: 'crop' })).toBe(true);
    expect(originalIsNoLarger(source, { width: 1200, height: 100, method: 'crop' })).toBe(true);
    expect(originalIsNoLarger(source, { width: 500, height: 500, method: 'crop' })).toBe(false);
    expect(originalIsNoLarger({ width: 40, height: 20 }, { width: 32, height: 32, method: 'crop' })).toBe(true);
  });

  test('dynamic sizes are the exact request, within the largest configured width and height', () => {
    expect(dynamicSize(SPEC_SIZES, { width: 50, height: 10, method: 'crop' })).toEqual({ width: 50, height: 10, method: 'crop' });
    expect(dynamicSize(SPEC_SIZES, { width: 800, height: 600, method: 'scale' })).toEqual({ width: 800, height: 600, method: 'scale' });
    expect(dynamicSize(SPEC_SIZES, { width: 801, height: 10, method: 'scale' })).toBeUndefined();
    expect(dynamicSize(SPEC_SIZES, { width: 10, height: 601, method: 'crop' })).toBeUndefined();
  });
});
