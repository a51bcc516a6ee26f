// The remote-fetch tables (migration 004): cached remote thumbnails, the fetch lock rows that make one
// instance fetch while the others wait, and the short-lived failure cache. Every statement is a single
// short query: nothing holds a connection while a remote server is being waited for.
import type { Knex } from 'knex';
import type { StagedBlob } from '../storage/datastore.js';
// Remote thumbnails have the shape of local ones; they live in a table of their own.
import { thumbnailRow, thumbnailWhere, toThumbnailRecord, type ThumbnailKey, type ThumbnailRecord, type ThumbnailRow } from './media-store.js';

/** The origin's file name (from its Content-Disposition) is kept, as for media. */
export type RemoteThumbnailRecord = ThumbnailRecord & { uploadName: string | null };

export interface CachedFailure {
  status: number;
  errcode: string;
  error: string;
}

export class RemoteFetchStore {
  constructor(private readonly knex: Knex) {}

  async getThumbnail(key: ThumbnailKey): Promise<RemoteThumbnailRecord | undefined> {
    const row = await this.knex<ThumbnailRow & { upload_name: string | null }>('remote_thumbnails').where(thumbnailWhere(key)).first();
    return row && { ...toThumbnailRecord(row), uploadName: row.upload_name };
  }

  /** Records a committed thumbnail inside BlobReferences.attach's transaction; false when a row was already there. */
  async insertThumbnail(trx: Knex.Transaction, key: ThumbnailKey, contentType: string, uploadName: string | null, blob: StagedBlob, now = Date.now()): Promise<boolean> {
    const inserted = await trx('remote_thumbnails')
      .insert({ ...thumbnailRow(key, contentType, blob, now), upload_name: uploadName })
      .onConflict(['server_name', 'media_id', 'width', 'height', 'method', 'animated'])
      .ignore()
      .returning('sha256');
    return inserted.length === 1;
  }

  /**
   * Takes the lock row for `fetchKey`, or takes it over when its holder stopped heartbeating before
   * `staleBefore` or (given the instances alive) its instance is dead.
   */
  async tryLock(fetchKey: string, owner: string, now: number, staleBefore: number, live?: ReadonlySet<string>): Promise<boolean> {
    const result = await this.knex.raw<{ rows: unknown[] }>(
      `INSERT INTO remote_fetches (fetch_key, owner, heartbeat_ts) VALUES (?, ?, ?)
       ON CONFLICT (fetch_key) DO UPDATE SET owner = EXCLUDED.owner, heartbeat_ts = EXCLUDED.heartbeat_ts
       WHERE remote_fetches.heartbeat_ts < ? ${live ? `OR NOT (${OWNER_INSTANCE} = ANY(?::text[]))` : ''}
       RETURNING owner`,
      [fetchKey, owner, now, staleBefore, ...(live ? [textArray(live)] : [])],
    );
    return result.rows.length === 1;
  }

  /** Lock rows whose holder's instance is dead or that were not heartbeated since `staleBefore`. */
  async staleLocks(live: ReadonlySet<string>, staleBefore: number): Promise<Array<{ fetchKey: string; owner: string }>> {
    const { rows } = await this.knex.raw<{ rows: Array<{ fetch_key: string; owner: string }> }>(
      `SELECT fetch_key, owner FROM remote_fetches WHERE heartbeat_ts < ? OR NOT (${OWNER_INSTANCE} = ANY(?::text[])) ORDER BY fetch_key`,
      [staleBefore, textArray(live)],
    );
    return rows.map((row) => ({ fetchKey: row.fetch_key, owner: row.owner }));
  }

  /** Drops the lock rows of dead instances (a crash mid-fetch); returns how many. */
  async deleteLocksOfDead(live: ReadonlySet<string>): Promise<number> {
    const { rowCount } = await this.knex.raw<{ rowCount: number }>(
      `DELETE FROM remote_fetches WHERE NOT (${OWNER_INSTANCE} = ANY(?::text[]))`, [textArray(live)]);
    return rowCount;
  }

  /** False when the lock was lost (taken over as stale). */
  async heartbeat(fetchKey: string, owner: string, now: number): Promise<boolean> {
    return (await this.knex('remote_fetches').where({ fetch_key: fetchKey, owner }).update({ heartbeat_ts: now })) === 1;
  }

  async unlock(fetchKey: string, owner: string): Promise<void> {
    await this.knex('remote_fetches').where({ fetch_key: fetchKey, owner }).delete();
  }

  async getFailure(fetchKey: string, now: number): Promise<CachedFailure | undefined> {
    const row = await this.knex<CachedFailure & { fetch_key: string; expires_ts: number }>('remote_fetch_failures')
      .where({ fetch_key: fetchKey })
      .andWhere('expires_ts', '>', now)
      .first();
    return row && { status: row.status, errcode: row.errcode, error: row.error };
  }

  async putFailure(fetchKey: string, failure: CachedFailure, expiresTs: number): Promise<void> {
    await this.knex('remote_fetch_failures')
      .insert({ fetch_key: fetchKey, ...failure, expires_ts: expiresTs })
      .onConflict('fetch_key')
      .merge();
  }

  async clearFailure(fetchKey: string): Promise<void> {
    await this.knex('remote_fetch_failures').where({ fetch_key: fetchKey }).delete();
  }

  /** Drops failures that have expired; without it every media that ever failed would keep its row. */
  async purgeExpiredFailures(now: number): Promise<number> {
    return this.knex('remote_fetch_failures').where('expires_ts', '<=', now).delete();
  }
}

/** A lock's owner is `<instance id>/<fetch id>`. */
const OWNER_INSTANCE = `split_part(remote_fetches.owner, '/', 1)`;

/** Instance ids (uuids) as a PostgreSQL text[] literal. */
function textArray(ids: ReadonlySet<string>): string {
  return `{${[...ids].map((id) => `"${id.replace(/["\\]/g, '')}"`).join(',')}}`;
}
