// SRV record ordering by RFC 2782 (src/federation/srv.ts): priority first, then weighted picks.
import type { SrvRecord } from 'node:dns';
import { isServiceRefused, orderSrvRecords } from '../../src/federation/srv.js';

describe('RFC 2782 ordering', () => {
  const record = (name: string, priority: number, weight: number): SrvRecord => ({ name, port: 1, priority, weight });

  test('lower priority always first', () => {
    for (let i = 0; i < 50; i++) {
      const ordered = orderSrvRecords([record('c', 30, 100), record('a', 10, 1), record('b', 20, 50)]);
      expect(ordered.map((r) => r.name)).toEqual(['a', 'b', 'c']);
    }
  });

  test('within a priority, picks follow the weights', () => {
    const firsts = { light: 0, heavy: 0 };
    const trials = 4000;
    for (let i = 0; i < trials; i++) {
      const [first] = orderSrvRecords([record('light', 10, 1), record('heavy', 10, 3)]);
      firsts[first!.name as 'light' | 'heavy']++;
    }
    // RFC 2782 draws from [0, total]: P(light first) = 2/5 with weights 1 and 3 (0 and 1 pick it).
    expect(firsts.light / trials).toBeGreaterThan(0.35);
    expect(firsts.light / trials).toBeLessThan(0.45);
  });

  test('every record appears once', () => {
    const records = Array.from({ length: 20 }, (_, i) => record(`r${i}`, i % 3, i % 4));
    expect(orderSrvRecords(records).map((r) => r.name).sort()).toEqual(records.map((r) => r.name).sort());
  });
});

describe('RFC 2782 "service not available"', () => {
  const record = (name: string): SrvRecord => ({ name, port: 0, priority: 0, weight: 0 });

  test('a single record whose target is the root, written "." or as node:dns gives it (""), refuses the service', () => {
    expect(isServiceRefused([record('.')])).toBe(true);
    expect(isServiceRefused([record('')])).toBe(true);
  });

  test('a "." among other records, a real target, or no records at all do not', () => {
    expect(isServiceRefused([record('.'), record('target.test')])).toBe(false);
    expect(isServiceRefused([record(''), record('target.test')])).toBe(false);
    expect(isServiceRefused([record('target.test')])).toBe(false);
    expect(isServiceRefused([])).toBe(false);
  });
});
