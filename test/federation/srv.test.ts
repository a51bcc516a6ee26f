// SRV record ordering by RFC 2782 (src/federation/srv.ts): priority first, then weighted picks.
import type { SrvRecord } from 'node:dns';
import { orderSrvRecords } from '../../src/federation/srv.js';

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
