// Tells every instance sharing the database to drop what it caches in memory about a key, within one
// poll interval. Polling rather than LISTEN/NOTIFY: it works the same on the embedded database, needs
// no dedicated connection outside the pool, and loses nothing across a reconnect.
import type { Knex } from 'knex';

/** What an instance caches: 'media' keys are "<serverName>/<mediaId>" (the record and its thumbnails). */
export type InvalidationScope = 'media';

/** The key that stands for every key of a scope: a bulk change publishes one row, not one per key. */
export const EVERY_KEY = '*';
const MAX_KEYS_PER_PUBLISH = 100;

// A publishing transaction commits after it inserts: look back this far so a slow commit is still seen.
const LOOKBACK_MS = 60_000;
const KEEP_MS = 3600_000;
const NOW_MS = '(floor(extract(epoch from clock_timestamp()) * 1000))::bigint';

interface InvalidationRow { id: string | number; scope: InvalidationScope; key: string; created_ts: string | number }

export class CacheInvalidations {
  private readonly handlers = new Map<InvalidationScope, Array<(key: string) => void>>();
  /** Row ids already delivered, with their created_ts, forgotten once older than the lookback. */
  private readonly delivered = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private polls = 0;

  constructor(private readonly knex: Knex, readonly pollMs: number, private readonly onError: (error: unknown) => void = () => {}) {}

  /** Delivers `key` here at once and to every other instance within pollMs of `db` committing. */
  async publish(db: Knex | Knex.Transaction, scope: InvalidationScope, keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    // Every instance reads every row for a minute: a purge of a million media must not become a million rows.
    const published = keys.length > MAX_KEYS_PER_PUBLISH ? [EVERY_KEY] : keys;
    await db('cache_invalidations').insert(published.map((key) => ({ scope, key })));
    for (const key of published) this.deliver(scope, key);
  }

  on(scope: InvalidationScope, handler: (key: string) => void): void {
    this.handlers.set(scope, [...(this.handlers.get(scope) ?? []), handler]);
  }

  /** Starts polling; what was published before now is already in no cache of this fresh instance. */
  async start(): Promise<void> {
    const rows = await this.recent();
    for (const row of rows) this.delivered.set(String(row.id), Number(row.created_ts));
    this.timer = setInterval(() => { this.polling ??= this.poll().finally(() => { this.polling = undefined; }); }, this.pollMs);
    this.timer.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.polling;
  }

  /** One poll; exposed so tests and the CLI need not wait for the timer. */
  async poll(): Promise<void> {
    try {
      const rows = await this.recent();
      for (const row of rows) {
        const id = String(row.id);
        if (this.delivered.has(id)) continue;
        this.delivered.set(id, Number(row.created_ts));
        this.deliver(row.scope, row.key);
      }
      const oldest = Math.min(...rows.map((r) => Number(r.created_ts)));
      for (const [id, ts] of this.delivered) if (ts < oldest) this.delivered.delete(id);
      if (++this.polls % 100 === 0) await this.knex.raw(`DELETE FROM cache_invalidations WHERE created_ts < ${NOW_MS} - ?`, [KEEP_MS]);
    } catch (error) {
      this.onError(error);
    }
  }

  private recent(): Promise<InvalidationRow[]> {
    return this.knex<InvalidationRow>('cache_invalidations').whereRaw(`created_ts > ${NOW_MS} - ?`, [LOOKBACK_MS]).orderBy('id');
  }

  private deliver(scope: InvalidationScope, key: string): void {
    for (const handler of this.handlers.get(scope) ?? []) handler(key);
  }
}
