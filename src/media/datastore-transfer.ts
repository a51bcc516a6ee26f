// Moves blobs between datastores without ever losing one: copy and verify (sha256), then switch the
// rows and record the source copy for deletion in one transaction, then delete it once no instance can
// still be reading it. Killed anywhere, a re-run finishes the job: rows still on the source are copied
// again (a committed copy is reused), recorded deletions are carried out, staged copies are swept.
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Knex } from 'knex';
import type { CacheInvalidations } from '../db/cache-invalidations.js';
import type { Datastores, MediaKind } from '../storage/datastores.js';
import { lockBlob, type BlobReferences } from './blob-references.js';

export interface TransferFilter {
  from: string;
  to: string;
  kind?: MediaKind;
  /** Only this hosted homeserver's local media and thumbnails (remote media belongs to no homeserver). */
  homeserver?: string;
}

export interface TransferProgress {
  total: number;
  done: number;
  failed: number;
}

export interface TransferDeps {
  knex: Knex;
  datastores: Datastores;
  blobs: BlobReferences;
  invalidations: CacheInvalidations;
}

/** Rows pointing at blobs, the kind each holds, and the homeserver column when the rows are local. */
const TABLES: Array<{ table: string; kind: MediaKind; where?: string; hosted: boolean }> = [
  { table: 'media', kind: 'local_media', where: 'NOT is_remote', hosted: true },
  { table: 'media', kind: 'remote_media', where: 'is_remote', hosted: false },
  { table: 'thumbnails', kind: 'thumbnails', hosted: true },
  { table: 'remote_thumbnails', kind: 'thumbnails', hosted: false },
];
const BATCH = 200;
const CONCURRENCY = 8;

class VanishedCopy extends Error {}

export class DatastoreTransfer {
  constructor(private readonly deps: TransferDeps, private readonly filter: TransferFilter) {
    if (filter.from === filter.to) throw new Error('--from and --to name the same datastore');
    deps.datastores.get(filter.from);
    deps.datastores.get(filter.to);
  }

  /** Blobs left to move (distinct sha256s with a matching row on the source). */
  async remaining(): Promise<number> {
    const { rows } = await this.deps.knex.raw<{ rows: Array<{ n: string }> }>(`SELECT count(DISTINCT sha256) AS n FROM (${this.matching()}) m`, this.bindings());
    return Number(rows[0]!.n);
  }

  /** Moves every matching blob; failures (e.g. a source copy that does not match its digest) are reported and left in place. */
  async run(onProgress: (progress: TransferProgress) => void, onFailure: (sha256: string, error: unknown) => void): Promise<TransferProgress> {
    await this.deletePending(Number.MAX_SAFE_INTEGER);
    const progress = { total: await this.remaining(), done: 0, failed: 0 };
    onProgress(progress);
    let after = '';
    for (;;) {
      const { rows } = await this.deps.knex.raw<{ rows: Array<{ sha256: string }> }>(
        `SELECT DISTINCT sha256 FROM (${this.matching()}) m WHERE sha256 > ? ORDER BY sha256 LIMIT ${BATCH}`, [...this.bindings(), after]);
      if (rows.length === 0) break;
      // A few blobs at a time: each is a handful of round trips to the datastores and the database.
      let next = 0;
      const worker = async () => {
        for (let i = next++; i < rows.length; i = next++) {
          const { sha256 } = rows[i]!;
          try {
            // Once more if a sweep deleted the target's copy between our look and our lock.
            await this.move(sha256).catch((error: unknown) => (error instanceof VanishedCopy ? this.move(sha256) : Promise.reject(error)));
            progress.done++;
          } catch (error) {
            progress.failed++;
            onFailure(sha256, error);
          }
          onProgress(progress);
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      after = rows[rows.length - 1]!.sha256;
      await this.deletePending(Date.now());
    }
    await this.deletePending(Number.MAX_SAFE_INTEGER);
    return progress;
  }

  private async move(sha256: string): Promise<void> {
    const { knex, datastores, blobs, invalidations } = this.deps;
    const source = datastores.get(this.filter.from);
    const target = datastores.get(this.filter.to);
    // A copy left by a killed run is reused only once it hashes right: a store without atomic writes can
    // keep a truncated object under the final key, and such a copy is replaced.
    const present = await target.has(sha256);
    const reusable = present && (await sha256Of(await target.read(sha256))) === sha256;
    if (present && !reusable) await target.delete(sha256);
    const staged = reusable ? undefined : await target.writeStream(await source.read(sha256), { maxBytes: Number.MAX_SAFE_INTEGER });
    if (staged && staged.sha256 !== sha256) {
      await staged.discard();
      throw new Error(`the copy read from ${source.id} hashes to ${staged.sha256}: the stored blob is damaged; its rows stay where they are`);
    }
    // Other instances may hold the old row for a poll interval, and read the old copy meanwhile.
    const notBefore = Date.now() + 2 * invalidations.pollMs + 1000;
    try {
      await staged?.publish(); // the slow copy holds no connection; under the lock it is checked again, as in BlobReferences.attach
      await knex.transaction(async (trx) => {
        await lockBlob(trx, target.id, sha256, 'shared');
        if (!(await target.has(sha256))) {
          if (!staged) throw new VanishedCopy();
          await staged.publish();
        }
        const moved: string[] = [];
        for (const spec of this.tables()) {
          const hosted = spec.hosted && this.filter.homeserver !== undefined ? ' AND server_name = ?' : '';
          const { rows } = await trx.raw<{ rows: Array<{ server_name: string; media_id: string }> }>(
            `UPDATE ${spec.table} SET datastore_id = ? WHERE datastore_id = ? AND sha256 = ?${spec.where ? ` AND ${spec.where}` : ''}${hosted} RETURNING server_name, media_id`,
            [target.id, source.id, sha256, ...(hosted ? [this.filter.homeserver!] : [])]);
          moved.push(...rows.map((r) => `${r.server_name}/${r.media_id}`));
        }
        await trx('pending_blob_deletions').insert({ datastore_id: source.id, sha256, not_before_ts: notBefore })
          .onConflict(['datastore_id', 'sha256']).merge();
        await invalidations.publish(trx, 'media', [...new Set(moved)]);
      });
    } catch (error) {
      await staged?.discard();
      await blobs.deleteIfUnreferenced(target.id, sha256);
      throw error;
    }
    await staged?.commit();
  }

  /** Deletes the recorded source copies due by `until` that no row references any more. */
  private async deletePending(until: number): Promise<void> {
    const { knex, blobs } = this.deps;
    const due = await knex<{ datastore_id: string; sha256: string; not_before_ts: string }>('pending_blob_deletions');
    const latest = Math.max(0, ...due.map((d) => Number(d.not_before_ts)));
    // Draining all: wait out the grace of the newest instead of deleting early.
    if (until === Number.MAX_SAFE_INTEGER && latest > Date.now()) await new Promise((resolve) => setTimeout(resolve, latest - Date.now()));
    for (const row of due) {
      if (until !== Number.MAX_SAFE_INTEGER && Number(row.not_before_ts) > until) continue;
      await blobs.deleteIfUnreferenced(row.datastore_id, row.sha256);
      await knex('pending_blob_deletions').where({ datastore_id: row.datastore_id, sha256: row.sha256 }).delete();
    }
  }

  private tables(): typeof TABLES {
    return TABLES.filter((t) => (this.filter.kind === undefined || t.kind === this.filter.kind) && (this.filter.homeserver === undefined || t.hosted));
  }

  private matching(): string {
    return this.tables().map((spec) => {
      const hosted = spec.hosted && this.filter.homeserver !== undefined ? ' AND server_name = ?' : '';
      return `SELECT sha256 FROM ${spec.table} WHERE datastore_id = ?${spec.where ? ` AND ${spec.where}` : ''}${hosted}`;
    }).join(' UNION ALL ');
  }

  private bindings(): string[] {
    return this.tables().flatMap((spec) => [this.filter.from, ...(spec.hosted && this.filter.homeserver !== undefined ? [this.filter.homeserver] : [])]);
  }
}

async function sha256Of(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
