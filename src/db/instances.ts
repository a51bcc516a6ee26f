// Which instances are alive, provably: each holds a session advisory lock on its own connection while its
// process lives (PostgreSQL drops it the moment the process dies, kill -9 included) and heartbeats its row
// (a host that vanished without closing its connection goes stale). What a dead instance left behind —
// staging files, fetch locks — can then be removed at once, never a live one's.
import { randomInt, randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type pg from 'pg';
import type { Database } from './database.js';

/** Advisory lock class (first key of pg_advisory_lock(int, int)) of instance liveness locks. */
export const INSTANCE_LOCK = 0x6d726970;
const NOW_MS = `(floor(extract(epoch from clock_timestamp()) * 1000))::bigint`;

export interface InstanceTimings {
  heartbeatMs: number;
  /** A row not heartbeated this long is a dead instance's, even if its lock still shows (a lost host). */
  staleMs: number;
}

export const INSTANCE_TIMINGS: InstanceTimings = { heartbeatMs: 10_000, staleMs: 60_000 };

/** What the rest of the service needs: this instance's id and which instances are alive. */
export interface InstanceLiveness {
  readonly id: string;
  /** The ids of the instances alive now, this one's included. */
  live(): Promise<ReadonlySet<string>>;
}

/** Instances whose lock is held and whose heartbeat is recent; `?`: staleMs. */
const LIVE_SQL = `SELECT i.instance_id FROM instances i
  WHERE i.heartbeat_ts >= ${NOW_MS} - ? AND EXISTS (SELECT 1 FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 AND l.classid::bigint = ${INSTANCE_LOCK}
      AND l.objid::bigint = i.lock_key AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))`;

/** On the embedded database every instance is in this process (one process opens it): those registered on it. */
const inProcess = new WeakMap<Knex, Set<string>>();

export class Instances implements InstanceLiveness {
  readonly id = randomUUID();
  private session: pg.Client | undefined;
  private lockKey = 0;
  private timer: NodeJS.Timeout | undefined;
  private beating: Promise<void> = Promise.resolve();

  private constructor(private readonly db: Database, private readonly timings: InstanceTimings, private readonly onError: (error: unknown) => void) {}

  /**
   * Registers this instance before it writes anything. The embedded database serves one process only:
   * there the instances alive are those registered in this process, and no row or lock is needed.
   */
  static async register(db: Database, onError: (error: unknown) => void, timings = INSTANCE_TIMINGS): Promise<Instances> {
    const instances = new Instances(db, timings, onError);
    if (!db.connectSession) {
      const registered = inProcess.get(db.knex) ?? new Set();
      inProcess.set(db.knex, registered.add(instances.id));
    } else {
      await instances.connect();
      instances.timer = setInterval(() => {
        instances.beating = instances.beat().catch(onError);
      }, timings.heartbeatMs);
      instances.timer.unref();
    }
    return instances;
  }

  async live(): Promise<ReadonlySet<string>> {
    if (!this.db.connectSession) return new Set(inProcess.get(this.db.knex));
    const { rows } = await this.db.knex.raw<{ rows: Array<{ instance_id: string }> }>(LIVE_SQL, [this.timings.staleMs]);
    return new Set([this.id, ...rows.map((r) => r.instance_id)]);
  }

  /** Deletes the rows of instances that are not alive; returns how many. */
  async forgetDead(live: ReadonlySet<string>): Promise<number> {
    return this.db.knex('instances').whereNotIn('instance_id', [...live]).delete();
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    inProcess.get(this.db.knex)?.delete(this.id);
    await this.beating;
    if (!this.session) return;
    await this.db.knex('instances').where({ instance_id: this.id }).delete().catch(this.onError);
    // Ending the session releases the lock.
    await this.session.end().catch(() => undefined);
    this.session = undefined;
  }

  /** A session holding a lock key no other instance holds, and this instance's row naming it. */
  private async connect(): Promise<void> {
    const session = await this.db.connectSession!();
    session.on('error', (error) => {
      // The connection dropped, and the lock with it: the next heartbeat connects again.
      if (this.session === session) this.session = undefined;
      this.onError(error);
    });
    const keep = this.lockKey;
    for (let key = keep || randomInt(1, 2 ** 31); ; key = randomInt(1, 2 ** 31)) {
      const { rows } = await session.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS locked', [INSTANCE_LOCK, key]);
      if (rows[0]!.locked) {
        this.lockKey = key;
        break;
      }
    }
    this.session = session;
    await this.upsert(this.db.knex);
  }

  private async beat(): Promise<void> {
    if (!this.session) await this.connect();
    else await this.upsert(this.db.knex);
  }

  /** Also brings back a row removed as dead while this instance could not heartbeat. */
  private async upsert(knex: Knex): Promise<void> {
    await knex.raw(
      `INSERT INTO instances (instance_id, lock_key, started_ts, heartbeat_ts) VALUES (?, ?, ${NOW_MS}, ${NOW_MS})
       ON CONFLICT (instance_id) DO UPDATE SET lock_key = EXCLUDED.lock_key, heartbeat_ts = EXCLUDED.heartbeat_ts`,
      [this.id, this.lockKey],
    );
  }
}
