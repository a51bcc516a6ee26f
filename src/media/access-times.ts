// Last access times, kept in memory and written in one statement per flush: a download costs no write.
// Remote media also records which hosted homeserver asked, so that its admins may act on it.
import type { Knex } from 'knex';
import type { Logger } from '../log.js';

interface Pending { serverName: string; mediaId: string; at: number; tenants: Set<string> }

// Bounds memory between flushes; beyond it the oldest entries are written early.
const MAX_PENDING = 50_000;

export class AccessTimes {
  private pending = new Map<string, Pending>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(private readonly knex: Knex, private readonly log: Logger, private readonly now: () => number = Date.now) {}

  /** Flushes every `intervalMs` until close(). */
  start(intervalMs: number): void {
    this.timer = setInterval(() => void this.flush(), intervalMs);
    this.timer.unref();
  }

  record(serverName: string, mediaId: string, tenant?: string): void {
    const key = `${serverName}/${mediaId}`;
    const entry = this.pending.get(key) ?? { serverName, mediaId, at: 0, tenants: new Set<string>() };
    entry.at = this.now();
    if (tenant !== undefined) entry.tenants.add(tenant);
    this.pending.set(key, entry);
    if (this.pending.size >= MAX_PENDING) void this.flush();
  }

  /** Writes what was recorded so far; flushes never overlap. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(() => this.write()).catch((error: unknown) => {
      this.log.warn({ err: (error as Error).message }, 'writing media access times failed');
    });
    return this.flushing;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }

  private async write(): Promise<void> {
    if (this.pending.size === 0) return;
    const batch = [...this.pending.values()];
    this.pending = new Map();
    const times = batch.map((p) => [p.serverName, p.mediaId, p.at]);
    await this.knex.raw(
      `UPDATE media SET last_access_ts = GREATEST(COALESCE(media.last_access_ts, 0), v.at)
       FROM (SELECT * FROM jsonb_to_recordset(?::jsonb) AS x(s text, m text, at bigint)) AS v
       WHERE media.server_name = v.s AND media.media_id = v.m`,
      [JSON.stringify(times.map(([s, m, at]) => ({ s, m, at })))],
    );
    const fetchers = batch.flatMap((p) => [...p.tenants].map((homeserver) => ({ server_name: p.serverName, media_id: p.mediaId, homeserver })));
    if (fetchers.length === 0) return;
    await this.knex.raw(
      `INSERT INTO remote_media_fetchers (server_name, media_id, homeserver)
       SELECT * FROM jsonb_to_recordset(?::jsonb) AS x(server_name text, media_id text, homeserver text)
       ON CONFLICT DO NOTHING`,
      [JSON.stringify(fetchers)],
    );
  }
}
