// The one rule tying rows to stored bytes: a row never points at bytes that are not committed, and bytes
// no row points at are deleted. Blobs are named by (datastore, sha256): the same bytes in two datastores
// are two blobs.
import type { Knex } from 'knex';
import type { Datastores } from '../storage/datastores.js';
import type { StagedBlob } from '../storage/datastore.js';

// Advisory lock class (first key of pg_advisory_xact_lock(int, int)).
const BLOB_LOCK = 0x6d626c62;

/** Every table whose (datastore_id, sha256) points into a datastore. */
const BLOB_REFERENCES = ['media', 'thumbnails', 'remote_thumbnails'];
const REFERENCED_SQL = `${BLOB_REFERENCES.map((table) => `SELECT 1 FROM ${table} WHERE sha256 = :sha256 AND datastore_id = :datastoreId`).join(' UNION ALL ')} LIMIT 1`;

export class BlobReferences {
  constructor(private readonly knex: Knex, private readonly datastores: Datastores) {}

  /**
   * Publishes the blob, then runs `attach` (which records it in some table of BLOB_REFERENCES) in a
   * transaction holding the blob's lock (shared); when nothing got attached, deletes the blob unless some
   * row references it (lock exclusive). The lock makes "unreferenced" true: no deleter can be between the
   * check below and the row. Every writer of a referencing row must come through here.
   */
  async attach(blob: StagedBlob, attach: (trx: Knex.Transaction) => Promise<boolean>): Promise<boolean> {
    let attached = false;
    try {
      // The slow part (a copy in an object store, an fsync) holds no connection and no lock.
      await blob.publish();
      attached = await this.knex.transaction(async (trx) => {
        await lockBlob(trx, blob.datastoreId, blob.sha256, 'shared');
        // A deleter that saw these bytes unreferenced may have taken them meanwhile: they go back from the staged copy.
        // A check that fails (an object store mid-way through another writer's put of the same key) publishes again too.
        if (!(await this.datastores.get(blob.datastoreId).has(blob.sha256).catch(() => false))) await blob.publish();
        return attach(trx);
      });
    } finally {
      if (attached) await blob.commit();
      else {
        await blob.discard();
        await this.deleteIfUnreferenced(blob.datastoreId, blob.sha256);
      }
    }
    return attached;
  }

  /**
   * Deletes the stored blobs no row points at, in every datastore: what a crash between committing bytes
   * and writing their row leaves behind. Safe while serving: a writer attaching the same bytes holds their lock.
   */
  async sweepUnreferenced(): Promise<{ checked: number; deleted: number }> {
    let checked = 0;
    let deleted = 0;
    for (const store of this.datastores.all()) {
      for await (const sha256 of store.list()) {
        checked++;
        if (await this.deleteIfUnreferenced(store.id, sha256)) deleted++;
      }
    }
    return { checked, deleted };
  }

  /** Whether some row points at this blob (read only; `storage check`). */
  async isReferenced(datastoreId: string, sha256: string): Promise<boolean> {
    return (await this.knex.raw<{ rows: unknown[] }>(REFERENCED_SQL, { sha256, datastoreId })).rows.length > 0;
  }

  /** Deletes the blob unless some row references it; true when it was deleted. */
  async deleteIfUnreferenced(datastoreId: string, sha256: string): Promise<boolean> {
    return this.knex.transaction(async (trx) => {
      await lockBlob(trx, datastoreId, sha256, 'exclusive');
      const referenced = await trx.raw<{ rows: unknown[] }>(REFERENCED_SQL, { sha256, datastoreId });
      if (referenced.rows.length > 0) return false;
      await this.datastores.get(datastoreId).delete(sha256);
      return true;
    });
  }
}

/** Writers attaching the same bytes share the lock; only a deleter needs it alone. */
export async function lockBlob(trx: Knex.Transaction, datastoreId: string, sha256: string, mode: 'shared' | 'exclusive'): Promise<void> {
  const lock = mode === 'shared' ? 'pg_advisory_xact_lock_shared' : 'pg_advisory_xact_lock';
  await trx.raw(`SELECT ${lock}(?, hashtext(?))`, blobLockKey(datastoreId, sha256));
}

/** The advisory lock's two arguments for one blob (the second goes through hashtext). */
export function blobLockKey(datastoreId: string, sha256: string): [number, string] {
  return [BLOB_LOCK, `${datastoreId}/${sha256}`];
}
