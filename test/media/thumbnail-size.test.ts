// Which configured thumbnail size serves a request (spec "Thumbnails": never smaller than asked when avoidable).
import type { ThumbnailSize } from '../../src/config/config.js';
import { chooseThumbnailSize } from '../../src/media/thumbnails.js';

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
    [{ width: 33, height: 20, method: 'crop' }, SPEC_SIZES[1]],
    [{ width: 96, height: 96, method: 'crop' }, SPEC_SIZES[1]],
    [{ width: 64, height: 64, method: 'scale' }, SPEC_SIZES[2]],
    [{ width: 320, height: 241, method: 'scale' }, SPEC_SIZES[3]],
    [{ width: 641, height: 10, method: 'scale' }, SPEC_SIZES[4]],
  ] as const)('%j -> %j (the smallest of its method at least as large)', (wanted, expected) => {
    expect(chooseThumbnailSize(SPEC_SIZES, wanted)).toEqual(expected);
  });

  test('a crop larger than every crop size falls back to the smallest large-enough size of any method', () => {
    expect(chooseThumbnailSize(SPEC_SIZES, { width: 200, height: 200, method: 'crop' })).toEqual(SPEC_SIZES[2]);
  });

  test('beyond every size: the largest of the method, else the largest of all', () => {
    expect(chooseThumbnailSize(SPEC_SIZES, { width: 4000, height: 4000, method: 'scale' })).toEqual(SPEC_SIZES[4]);
    expect(chooseThumbnailSize(SPEC_SIZES, { width: 4000, height: 4000, method: 'crop' })).toEqual(SPEC_SIZES[1]);
    expect(chooseThumbnailSize([SPEC_SIZES[0]!, SPEC_SIZES[2]!], { width: 900, height: 900, method: 'crop' })).toEqual(SPEC_SIZES[0]);
  });

  test('the result always satisfies the request when some size can', () => {
    for (let w = 1; w <= 900; w += 37) {
      for (let h = 1; h <= 700; h += 29) {
        for (const method of ['crop', 'scale'] as const) {
          const chosen = chooseThumbnailSize(SPEC_SIZES, { width: w, height: h, method });
          const possible = SPEC_SIZES.some((s) => s.width >= w && s.height >= h);
          if (possible) expect(chosen.width >= w && chosen.height >= h).toBe(true);
        }
      }
    }
  });
});
