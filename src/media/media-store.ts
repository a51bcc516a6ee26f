// The media and thumbnails tables. Rows get their bytes through BlobReferences, which keeps rows and
// stored bytes in step.
import type { Knex } from 'knex';
import type { ThumbnailSpec } from '../matrix/thumbnail-spec.js';
import type { StagedBlob } from '../storage/datastore.js';
import { EVERY_KEY } from '../db/cache-invalidations.js';
import { LruCache, type CacheLookups } from '../lru-cache.js';
import type { BlobReferences } from './blob-references.js';

export interface MediaRecord {
  serverName: string;
  mediaId: string;
  isRemote: boolean;
  userId: string | null;
  contentType: string | null;
  uploadName: string | null;
  /** Null while a /create'd upload is pending. */
  sha256: string | null;
  datastoreId: string | null;
  size: number | null;
  createdTs: number;
  storedTs: number | null;
  expiresTs: number | null;
  /** Quarantined media is served nowhere and never fetched again. */
  quarantined: boolean;
}

export interface NewMedia {
  serverName: string;
  mediaId: string;
  isRemote: boolean;
  userId: string | null;
  contentType: string;
  uploadName: string | null;
}

export interface MediaContent {
  contentType: string;
  uploadName: string | null;
}

/** A thumbnail of one media: the media, and what was asked of it. */
export interface ThumbnailKey extends ThumbnailSpec {
  serverName: string;
  mediaId: string;
}

export interface ThumbnailRecord extends ThumbnailKey {
  contentType: string;
  datastoreId: string;
  sha256: string;
  size: number;
  createdTs: number;
}

/** Runs inside the transaction that records new bytes; throwing refuses them. */
export type StoreGuard = (trx: Knex.Transaction) => Promise<void>;

export type PendingOutcome = { created: true } | { created: false; retryAfterMs: number };

// Advisory lock class (first key of pg_advisory_xact_lock(int, int)).
const PENDING_LOCK = 0x6d70656e;

interface MediaRow {
  server_name: string; media_id: string; is_remote: boolean; user_id: string | null; content_type: string | null;
  upload_name: string | null; sha256: string | null; datastore_id: string | null; size: number | null; created_ts: number;
  stored_ts: number | null; expires_ts: number | null; quarantined: boolean;
}

export interface ThumbnailRow {
  server_name: string; media_id: string; width: number; height: number; method: 'crop' | 'scale';
  animated: boolean; content_type: string; datastore_id: string; sha256: string; size: number; created_ts: number;
}

// Rows whose bytes have arrived change only by admin action (quarantine, purge), so every instance may
// keep them for ttlMs: a database round trip per request was most of the cost of serving small media.
const RECORD_CACHE_SIZE = 20_000;
// Clients ask a few standard sizes; a client asking ever new sizes must not grow one media's entry without end.
export const THUMBNAIL_SIZES_CACHED = 8;

const QUARANTINED = `EXISTS (SELECT 1 FROM quarantined_media q WHERE q.server_name = ? AND q.media_id = ?)`;

interface Cached<T> { value: T; expiresAt: number }

export class MediaStore {
  private readonly storedMedia: LruCache<string, Cached<MediaRecord>>;
  private readonly quarantine = new LruCache<string, Cached<boolean>>(RECORD_CACHE_SIZE);
  /** By media ("<serverName>/<mediaId>"), then by size: forgetting a media forgets its thumbnails. */
  private readonly thumbnailRecords: LruCache<string, Map<string, ThumbnailRecord>>;

  /** `ttlMs` bounds how long another instance's quarantine or purge can go unseen here. */
  constructor(
    private readonly knex: Knex,
    readonly blobs: BlobReferences,
    private readonly ttlMs = 5000,
    lookups?: { media?: CacheLookups; thumbnails?: CacheLookups },
  ) {
    this.storedMedia = new LruCache(RECORD_CACHE_SIZE, lookups?.media);
    this.thumbnailRecords = new LruCache(RECORD_CACHE_SIZE, lookups?.thumbnails);
  }

  /** Drops what this instance cached of "<serverName>/<mediaId>" (or of all, for EVERY_KEY): an admin or a transfer changed it, here or elsewhere. */
  forget(mediaKey: string): void {
    if (mediaKey === EVERY_KEY) {
      for (const cache of [this.storedMedia, this.quarantine, this.thumbnailRecords]) cache.clear();
      return;
    }
    this.storedMedia.delete(mediaKey);
    this.quarantine.delete(mediaKey);
    this.thumbnailRecords.delete(mediaKey);
  }

  async get(serverName: string, mediaId: string): Promise<MediaRecord | undefined> {
    const key = `${serverName}/${mediaId}`;
    const cached = this.fresh(this.storedMedia, key);
    if (cached) return cached;
    const row = await this.knex<MediaRow>('media')
      .select('*', this.knex.raw(`${QUARANTINED} AS quarantined`, [serverName, mediaId]))
      .where({ server_name: serverName, media_id: mediaId }).first();
    const record = row && toMediaRecord(row);
    // Pending uploads are left out: their row changes when the bytes arrive, or goes when they expire.
    if (record?.sha256 && this.ttlMs > 0) this.storedMedia.set(key, { value: record, expiresAt: Date.now() + this.ttlMs });
    return record;
  }

  /** Whether the media is quarantined, whether or not it is (still) stored here. */
  async isQuarantined(serverName: string, mediaId: string): Promise<boolean> {
    const key = `${serverName}/${mediaId}`;
    const cached = this.fresh(this.quarantine, key);
    if (cached !== undefined) return cached;
    const { rows } = await this.knex.raw<{ rows: Array<{ quarantined: boolean }> }>(`SELECT ${QUARANTINED} AS quarantined`, [serverName, mediaId]);
    const value = rows[0]!.quarantined;
    if (this.ttlMs > 0) this.quarantine.set(key, { value, expiresAt: Date.now() + this.ttlMs });
    return value;
  }


  private fresh<T>(cache: LruCache<string, Cached<T>>, key: string): T | undefined {
    const entry = cache.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt > Date.now()) return entry.value;
    cache.delete(key);
    return undefined;
  }

  /**
   * Commits the blob and records it; false (blob discarded unless referenced) when the ID is taken.
   * `guard` runs first in the same transaction (quotas); when it throws, nothing is stored.
   */
  async insertMedia(media: NewMedia, blob: StagedBlob, now = Date.now(), guard?: StoreGuard): Promise<boolean> {
    return this.blobs.attach(blob, async (trx) => {
      await guard?.(trx);
      const inserted = await trx('media').insert({
        server_name: media.serverName,
        media_id: media.mediaId,
        is_remote: media.isRemote,
        user_id: media.userId,
        content_type: media.contentType,
        upload_name: media.uploadName,
        datastore_id: blob.datastoreId,
        sha256: blob.sha256,
        size: blob.size,
        created_ts: now,
        stored_ts: now,
      }).onConflict(['server_name', 'media_id']).ignore().returning('media_id');
      return inserted.length === 1;
    });
  }

  /**
   * Reserves an ID for an async upload unless the user already has `maxPending` unexpired ones.
   * Serialised per user, so concurrent /create calls cannot overshoot the limit.
   */
  async createPending(
    serverName: string, mediaId: string, userId: string, limits: { expiresTs: number; maxPending: number }, now = Date.now(),
  ): Promise<PendingOutcome> {
    return this.knex.transaction(async (trx) => {
      await trx.raw('SELECT pg_advisory_xact_lock(?, hashtext(?))', [PENDING_LOCK, `${serverName}|${userId}`]);
      const mine = () => trx<MediaRow>('media').where({ server_name: serverName, user_id: userId }).whereNull('sha256');
      await mine().where('expires_ts', '<=', now).delete();
      const pending = await mine().select('expires_ts').orderBy('expires_ts');
      if (pending.length >= limits.maxPending) {
        return { created: false, retryAfterMs: Math.max(0, pending[0]!.expires_ts! - now) };
      }
      await trx('media').insert({
        server_name: serverName, media_id: mediaId, is_remote: false, user_id: userId, created_ts: now, expires_ts: limits.expiresTs,
      });
      return { created: true };
    });
  }

  /** Fills a pending upload; false when it was filled (or dropped) meanwhile: the first writer wins. */
  async completePending(
    serverName: string, mediaId: string, content: MediaContent, blob: StagedBlob, now = Date.now(), guard?: StoreGuard,
  ): Promise<boolean> {
    return this.blobs.attach(blob, async (trx) => {
      await guard?.(trx);
      const updated = await trx('media')
        .where({ server_name: serverName, media_id: mediaId })
        .whereNull('sha256')
        .update({
          datastore_id: blob.datastoreId, sha256: blob.sha256, size: blob.size, content_type: content.contentType, upload_name: content.uploadName,
          stored_ts: now, expires_ts: null,
        });
      return updated === 1;
    });
  }

  async getThumbnail(key: ThumbnailKey): Promise<ThumbnailRecord | undefined> {
    const mediaKey = `${key.serverName}/${key.mediaId}`;
    const sizeKey = `${key.width}x${key.height}/${key.method}/${key.animated}`;
    const cached = this.thumbnailRecords.get(mediaKey)?.get(sizeKey);
    if (cached) return cached;
    const row = await this.knex<ThumbnailRow>('thumbnails').where(thumbnailWhere(key)).first();
    const record = row && toThumbnailRecord(row);
    if (record) {
      const sizes = this.thumbnailRecords.get(mediaKey) ?? new Map<string, ThumbnailRecord>();
      if (sizes.size >= THUMBNAIL_SIZES_CACHED) sizes.delete(sizes.keys().next().value!);
      sizes.set(sizeKey, record);
      this.thumbnailRecords.set(mediaKey, sizes);
    }
    return record;
  }

  /** How many thumbnails of one media are stored (dynamic sizing stops adding sizes at a cap). */
  async countThumbnails(serverName: string, mediaId: string): Promise<number> {
    const [row] = await this.knex('thumbnails').where({ server_name: serverName, media_id: mediaId }).count<Array<{ count: string | number }>>({ count: '*' });
    return Number(row?.count ?? 0);
  }

  /** Records a generated thumbnail; if another generator got there first, its row wins and ours is dropped. */
  async insertThumbnail(key: ThumbnailKey, contentType: string, blob: StagedBlob, now = Date.now()): Promise<ThumbnailRecord> {
    const row = thumbnailRow(key, contentType, blob, now);
    const inserted = await this.blobs.attach(blob, async (trx) => {
      const rows = await trx('thumbnails').insert(row)
        .onConflict(['server_name', 'media_id', 'width', 'height', 'method', 'animated']).ignore().returning('sha256');
      return rows.length === 1;
    });
    if (inserted) return toThumbnailRecord(row);
    const winner = await this.getThumbnail(key);
    if (!winner) throw new Error('a concurrently generated thumbnail vanished');
    return winner;
  }
}

export function thumbnailWhere(key: ThumbnailKey): Pick<ThumbnailRow, 'server_name' | 'media_id' | 'width' | 'height' | 'method' | 'animated'> {
  return {
    server_name: key.serverName, media_id: key.mediaId, width: key.width, height: key.height, method: key.method, animated: key.animated,
  };
}

export function thumbnailRow(key: ThumbnailKey, contentType: string, blob: StagedBlob, now: number): ThumbnailRow {
  return { ...thumbnailWhere(key), content_type: contentType, datastore_id: blob.datastoreId, sha256: blob.sha256, size: blob.size, created_ts: now };
}

function toMediaRecord(row: MediaRow): MediaRecord {
  return {
    serverName: row.server_name,
    mediaId: row.media_id,
    isRemote: row.is_remote,
    userId: row.user_id,
    contentType: row.content_type,
    uploadName: row.upload_name,
    sha256: row.sha256,
    datastoreId: row.datastore_id,
    size: row.size,
    createdTs: row.created_ts,
    storedTs: row.stored_ts,
    expiresTs: row.expires_ts,
    quarantined: row.quarantined === true,
  };
}

export function toThumbnailRecord(row: ThumbnailRow): ThumbnailRecord {
  return {
    serverName: row.server_name,
    mediaId: row.media_id,
    width: row.width,
    height: row.height,
    method: row.method,
    animated: row.animated,
    contentType: row.content_type,
    datastoreId: row.datastore_id,
    sha256: row.sha256,
    size: row.size,
    createdTs: row.created_ts,
  };
}
