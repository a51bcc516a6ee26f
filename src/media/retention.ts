// Scheduled retention: remote media not accessed for N days, and local media older than N days, per
// homeserver (else the global setting). One instance runs it at a time, holding a lease in job_leases.
// Quarantined media is kept: it is evidence until an admin purges it.
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type { HomeserverConfig, RetentionConfig } from '../config/config.js';
import type { Logger } from '../log.js';
import type { AuditLog } from './audit-log.js';
import type { MediaKey } from './media-selection.js';
import type { Purge } from './purge.js';

const DAY_MS = 86_400_000;
const JOB = 'retention';
const SYSTEM = { actor: 'retention', homeserver: null };

export interface RetentionSettings { leaseStaleMs: number; now?: () => number }

export class Retention {
  private readonly owner = randomUUID();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private readonly now: () => number;

  constructor(
    private readonly knex: Knex,
    private readonly purge: Purge,
    private readonly audit: AuditLog,
    private readonly global: RetentionConfig,
    private readonly homeservers: HomeserverConfig[],
    private readonly log: Logger,
    settings: RetentionSettings,
  ) {
    this.now = settings.now ?? Date.now;
    this.leaseStaleMs = settings.leaseStaleMs;
  }

  private readonly leaseStaleMs: number;

  /** Runs every intervalMs when any retention is configured. */
  start(): void {
    const configured = [this.global, ...this.homeservers.map((hs) => hs.retention)].some((r) => r.remoteMediaDays || r.localMediaDays);
    if (!configured) return;
    this.timer = setInterval(() => {
      this.running ??= this.runOnce().catch((error: unknown) => this.log.warn({ err: (error as Error).message }, 'retention failed'))
        .finally(() => (this.running = undefined));
    }, this.global.intervalMs);
    this.timer.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** One pass; undefined when another instance holds the job. */
  async runOnce(): Promise<{ remote: number; local: number; bytes: number } | undefined> {
    if (!(await this.takeLease())) return undefined;
    try {
      const remote = await this.purgeKeys(await this.expiredRemote());
      const local = await this.purgeKeys(await this.expiredLocal());
      const outcome = { remote: remote.count, local: local.count, bytes: remote.bytes + local.bytes };
      if (outcome.remote + outcome.local > 0) {
        await this.audit.record(SYSTEM, { action: 'retention', target: 'expired media', count: outcome.remote + outcome.local, bytes: outcome.bytes });
      }
      return outcome;
    } finally {
      await this.knex('job_leases').where({ job: JOB, owner: this.owner }).delete();
    }
  }

  /** Remote media is kept as long as the longest retention of the homeservers whose users fetched it. */
  private async expiredRemote(): Promise<MediaKey[]> {
    const policies = [this.global.remoteMediaDays, ...this.homeservers.map((hs) => hs.retention.remoteMediaDays ?? this.global.remoteMediaDays)];
    const days = policies.filter((d): d is number => typeof d === 'number');
    if (days.length === 0) return [];
    const { rows } = await this.knex.raw<{ rows: Array<{ server_name: string; media_id: string; at: number; fetchers: Array<string | null> }> }>(
      `SELECT m.server_name, m.media_id, COALESCE(m.last_access_ts, m.stored_ts, m.created_ts) AS at, array_agg(f.homeserver) AS fetchers
       FROM media m LEFT JOIN remote_media_fetchers f ON f.server_name = m.server_name AND f.media_id = m.media_id
       WHERE m.is_remote AND COALESCE(m.last_access_ts, m.stored_ts, m.created_ts) < ?
         AND NOT EXISTS (SELECT 1 FROM quarantined_media q WHERE q.server_name = m.server_name AND q.media_id = m.media_id)
       GROUP BY m.server_name, m.media_id`,
      [this.now() - Math.min(...days) * DAY_MS],
    );
    return rows.filter((row) => {
      const fetchers = row.fetchers.filter((f): f is string => f !== null);
      const keep = fetchers.length === 0
        ? this.global.remoteMediaDays
        : maxOrNull(fetchers.map((name) => this.homeservers.find((hs) => hs.name === name)?.retention.remoteMediaDays ?? this.global.remoteMediaDays));
      return keep !== null && keep !== undefined && row.at < this.now() - keep * DAY_MS;
    }).map((row) => ({ serverName: row.server_name, mediaId: row.media_id }));
  }

  private async expiredLocal(): Promise<MediaKey[]> {
    const keys: MediaKey[] = [];
    for (const hs of this.homeservers) {
      const days = hs.retention.localMediaDays ?? this.global.localMediaDays;
      if (typeof days !== 'number') continue;
      const rows: Array<{ server_name: string; media_id: string }> = await this.knex('media as m')
        .select('m.server_name', 'm.media_id')
        .where({ 'm.server_name': hs.name, 'm.is_remote': false }).where('m.created_ts', '<', this.now() - days * DAY_MS)
        .whereNotExists(this.knex.select(this.knex.raw('1')).from('quarantined_media as q').whereRaw('q.server_name = m.server_name AND q.media_id = m.media_id'));
      keys.push(...rows.map((row) => ({ serverName: row.server_name, mediaId: row.media_id })));
    }
    return keys;
  }

  private async purgeKeys(keys: MediaKey[]): Promise<{ count: number; bytes: number }> {
    const total = { count: 0, bytes: 0 };
    for (let i = 0; i < keys.length; i += 200) {
      const done = await this.purge.purgeKeys(keys.slice(i, i + 200));
      total.count += done.count;
      total.bytes += done.bytes;
      await this.knex('job_leases').where({ job: JOB, owner: this.owner }).update({ heartbeat_ts: this.now() });
    }
    return total;
  }

  private async takeLease(): Promise<boolean> {
    const at = this.now();
    const { rows } = await this.knex.raw<{ rows: unknown[] }>(
      `INSERT INTO job_leases (job, owner, heartbeat_ts) VALUES (?, ?, ?)
       ON CONFLICT (job) DO UPDATE SET owner = EXCLUDED.owner, heartbeat_ts = EXCLUDED.heartbeat_ts
       WHERE job_leases.heartbeat_ts < ? RETURNING owner`,
      [JOB, this.owner, at, at - this.leaseStaleMs],
    );
    return rows.length === 1;
  }
}

/** The longest retention of several; null (keep forever) if any keeps forever. */
function maxOrNull(days: Array<number | null | undefined>): number | null {
  if (days.some((d) => d === null || d === undefined)) return null;
  return Math.max(...(days as number[]));
}
