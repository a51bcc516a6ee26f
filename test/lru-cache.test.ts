import { LruCache } from '../src/lru-cache.js';

describe('LruCache', () => {
  test('keeps at most its capacity and forgets the least recently used first', () => {
    const cache = new LruCache<string, number>(2);
    cache.set('a', 1);
    cache.set('b', 2);
    expect(cache.get('a')).toBe(1);
    cache.set('c', 3);
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')).toBe(1);
    expect(cache.get('c')).toBe(3);
    cache.set('c', 4);
    cache.set('d', 5);
    expect(cache.get('a')).toBeUndefined();
    expect([cache.get('c'), cache.get('d')]).toEqual([4, 5]);
  });
});
