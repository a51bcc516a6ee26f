// RFC 2782 target selection: lowest priority first; within a priority, a weighted random order in which
// weight-0 records come first and each pick is drawn with probability proportional to its weight.
import type { SrvRecord } from 'node:dns';

/** `random` returns a number in [0, 1), like Math.random. */
export function orderSrvRecords(records: readonly SrvRecord[], random: () => number = Math.random): SrvRecord[] {
  const byPriority = new Map<number, SrvRecord[]>();
  for (const record of records) byPriority.set(record.priority, [...(byPriority.get(record.priority) ?? []), record]);
  const ordered: SrvRecord[] = [];
  for (const priority of [...byPriority.keys()].sort((a, b) => a - b)) {
    const group = byPriority.get(priority)!;
    const remaining = [...group.filter((r) => r.weight === 0), ...group.filter((r) => r.weight !== 0)];
    while (remaining.length > 0) {
      const total = remaining.reduce((sum, r) => sum + r.weight, 0);
      // RFC 2782: pick a uniform number in [0, total] and take the first record whose running sum reaches it.
      const pick = Math.floor(random() * (total + 1));
      let running = 0;
      const index = remaining.findIndex((r) => (running += r.weight) >= pick);
      ordered.push(...remaining.splice(index === -1 ? 0 : index, 1));
    }
  }
  return ordered;
}

/** RFC 2782: a single record with target "." means the service is decidedly not available. */
export function isServiceRefused(records: readonly SrvRecord[]): boolean {
  return records.length === 1 && (records[0]!.name === '.' || records[0]!.name === '');
}
