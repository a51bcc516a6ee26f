// Deletion that frees bytes: rows go in one transaction that also lists their blobs in blob_releases;
// then each blob is deleted unless another row still references it (BlobReferences' locking rule), and
// its listing goes. A crash in between leaves the listing, which the next purge or task drains first.
import type { Knex } from 'knex';
import type { CacheInvalidations } from '../db/cache-invalidations.js';
import { forbidden, notFound } from '../matrix/errors.js';
import type { BlobReferences } from './blob-references.js';
import type { MediaStore } from './media-store.js';
import { assertWithinScope, selectMedia, type AdminScope, type MediaKey, type MediaSelector } from './media-selection.js';

export interface PurgeCounts {
  /** Media rows covered (thumbnails go with them). */
  count: number;
  /** Bytes of those media and their thumbnails; shared blobs are only freed when nothing else references them. */
  bytes: number;
}

export interface PurgeBatch extends PurgeCounts {
  purged: MediaKey[];
}

const BATCH = 200;
const KEYS = 'jsonb_to_recordset(?::jsonb) AS k(server_name text, media_id text)';
const THUMBNAIL_BYTES = (table: string) =>
  `COALESCE((SELECT sum(t.size) FROM ${table} t WHERE t.server_name = m.server_name AND t.media_id = m.media_id), 0)`;

export class Purge {
  constructor(
    private readonly knex: Knex,
    private readonly media: MediaStore,
    private readonly blobs: BlobReferences,
    private readonly hosted: string[],
    private readonly invalidations: CacheInvalidations,
  ) {}

  /** 403 when a homeserver admin selects beyond their homeserver; 404 for one unknown media. */
  async check(selector: MediaSelector, scope: AdminScope): Promise<PurgeCounts> {
    assertWithinScope(selector, scope, (name) => this.hosted.includes(name));
    const counts = await this.estimate(selector, scope);
    if (selector.kind === 'media' && counts.count === 0) {
      const exists = await this.knex('media').where({ server_name: selector.serverName, media_id: selector.mediaId }).first();
      if (exists && scope.homeserver !== null) throw forbidden('None of your homeserver\'s users fetched this remote media');
      throw notFound('Media not found');
    }
    return counts;
  }

  /** What a purge would delete now: the dry run. */
  async estimate(selector: MediaSelector, scope: AdminScope): Promise<PurgeCounts> {
    const [row] = await selectMedia(this.knex, selector, scope, this.hosted).select(
      this.knex.raw('count(*) AS count'),
      this.knex.raw(`COALESCE(sum(COALESCE(m.size, 0) + ${THUMBNAIL_BYTES('thumbnails')} + ${THUMBNAIL_BYTES('remote_thumbnails')}), 0) AS bytes`),
    );
    return { count: Number(row.count), bytes: Number(row.bytes) };
  }

  /** Purges up to one batch of what the selector still covers; count 0 when nothing is left. */
  async purgeNextBatch(selector: MediaSelector, scope: AdminScope): Promise<PurgeBatch> {
    const rows: Array<{ server_name: string; media_id: string }> = await selectMedia(this.knex, selector, scope, this.hosted)
      .select('m.server_name', 'm.media_id').orderBy(['m.server_name', 'm.media_id']).limit(BATCH);
    const keys = rows.map((r) => ({ serverName: r.server_name, mediaId: r.media_id }));
    return { ...(await this.purgeKeys(keys)), purged: keys };
  }

  /** Everything the selector covers, batch by batch. */
  async purgeAll(selector: MediaSelector, scope: AdminScope, onBatch?: (batch: PurgeBatch) => Promise<void> | void): Promise<PurgeBatch> {
    const total: PurgeBatch = { count: 0, bytes: 0, purged: [] };
    await this.releasePending();
    for (;;) {
      const batch = await this.purgeNextBatch(selector, scope);
      if (batch.count === 0) return total;
      total.count += batch.count;
      total.bytes += batch.bytes;
      total.purged.push(...batch.purged);
      await onBatch?.(batch);
    }
  }

  /** Deletes the media rows, their thumbnails and fetcher records, then the bytes nothing else references. */
  async purgeKeys(keys: MediaKey[]): Promise<PurgeCounts> {
    if (keys.length === 0) return { count: 0, bytes: 0 };
    const param = JSON.stringify(keys.map((k) => ({ server_name: k.serverName, media_id: k.mediaId })));
    const counts = await this.knex.transaction(async (trx) => {
      const using = (table: string) => `DELETE FROM ${table} d USING ${KEYS} WHERE d.server_name = k.server_name AND d.media_id = k.media_id`;
      const thumbs = await trx.raw<{ rows: BlobRow[] }>(`${using('thumbnails')} RETURNING d.datastore_id, d.sha256, d.size`, [param]);
      const remoteThumbs = await trx.raw<{ rows: BlobRow[] }>(`${using('remote_thumbnails')} RETURNING d.datastore_id, d.sha256, d.size`, [param]);
      const media = await trx.raw<{ rows: BlobRow[] }>(`${using('media')} RETURNING d.datastore_id, d.sha256, d.size`, [param]);
      await trx.raw(using('remote_media_fetchers'), [param]);
      const blobs = [...thumbs.rows, ...remoteThumbs.rows, ...media.rows].filter((b) => b.sha256 !== null && b.datastore_id !== null);
      if (blobs.length > 0) {
        await trx.raw(
          `INSERT INTO blob_releases (datastore_id, sha256) SELECT DISTINCT * FROM jsonb_to_recordset(?::jsonb) AS b(datastore_id text, sha256 text) ON CONFLICT DO NOTHING`,
          [JSON.stringify(blobs.map((b) => ({ datastore_id: b.datastore_id, sha256: b.sha256 })))],
        );
      }
      await this.invalidations.publish(trx, 'media', keys.map((k) => `${k.serverName}/${k.mediaId}`));
      const bytes = [...thumbs.rows, ...remoteThumbs.rows, ...media.rows].reduce((sum, b) => sum + Number(b.size ?? 0), 0);
      return { count: media.rows.length, bytes };
    });
    // Again after commit: a request here between the publish and the commit may have cached the old row.
    for (const key of keys) this.media.forget(`${key.serverName}/${key.mediaId}`);
    await this.releasePending();
    return counts;
  }

  /** Deletes listed blobs that no row references any more; safe to run anywhere, any time, twice. */
  async releasePending(): Promise<number> {
    let released = 0;
    for (;;) {
      const pending: Array<{ datastore_id: string; sha256: string }> = await this.knex('blob_releases').select('*').limit(BATCH);
      if (pending.length === 0) return released;
      for (const blob of pending) {
        if (await this.blobs.deleteIfUnreferenced(blob.datastore_id, blob.sha256)) released++;
      }
      await this.knex('blob_releases').whereIn(['datastore_id', 'sha256'], pending.map((b) => [b.datastore_id, b.sha256])).delete();
    }
  }
}

interface BlobRow { datastore_id: string | null; sha256: string | null; size: number | null }
