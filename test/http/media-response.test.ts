// Byte ranges per RFC 9110 §14: one range served, the rest ignored or refused.
import { parseRange } from '../../src/http/media-response.js';

describe('parseRange', () => {
  test.each([
    ['bytes=0-499', 10_000, { start: 0, end: 499 }],
    ['bytes=500-999', 10_000, { start: 500, end: 999 }],
    ['bytes=-500', 10_000, { start: 9500, end: 9999 }],
    ['bytes=9500-', 10_000, { start: 9500, end: 9999 }],
    ['bytes=0-0', 10_000, { start: 0, end: 0 }],
    ['bytes=-1', 10_000, { start: 9999, end: 9999 }],
    ['bytes=0-99999', 10_000, { start: 0, end: 9999 }],
    ['bytes=-20000', 10_000, { start: 0, end: 9999 }],
    [' bytes=1-2 ', 10, { start: 1, end: 2 }],
  ])('%s of %d bytes is %j', (header, size, range) => {
    expect(parseRange(header, size)).toEqual(range);
  });

  test.each([
    ['bytes=10000-', 10_000],
    ['bytes=10000-10001', 10_000],
    ['bytes=-0', 10_000],
    ['bytes=0-', 0],
    ['bytes=-5', 0],
  ])('%s of %d bytes is unsatisfiable', (header, size) => {
    expect(parseRange(header, size)).toBe('unsatisfiable');
  });

  test.each(['bytes=0-1,5-6', 'bytes=5-2', 'bytes=-', 'bytes=a-b', 'items=0-1', 'bytes 0-1', ''])('%j is ignored', (header) => {
    expect(parseRange(header, 100)).toBeUndefined();
  });
});
