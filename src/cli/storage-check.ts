// media-repo storage check: read only. Every row's blob is in the datastore the row names, with the row's
// size and sha256 (streamed and hashed unless -quick); no stored blob lacks a row; no staging is left that no
// live instance owns; no remote fetch lock is held by a dead instance or went stale.
import { createHash } from 'node:crypto';
import { FETCH_LOCK_STALE_MS } from '../media/remote-media.js';
import { RemoteFetchStore } from '../media/remote-store.js';
import type { Services } from '../service.js';
import { abandonedStaging, UNNAMED_STAGING_MS } from '../storage/staging.js';
import type { CliIo } from './args.js';

export interface Problem {
  problem: 'missing' | 'wrong size' | 'wrong sha256' | 'unknown datastore' | 'unreferenced' | 'abandoned staging' | 'stale lock';
  datastore?: string;
  /** The blob's sha256, the staging name, or the lock's fetch key. */
  name: string;
  detail?: string;
}

interface Counts { referenced: number; stored: number; staging: number; locks: number }

const PAGE = 500;

export async function checkStorage(services: Services, options: { quick: boolean; json: boolean }, io: CliIo): Promise<void> {
  const problems: Problem[] = [];
  const report = (problem: Problem) => {
    problems.push(problem);
    if (!options.json) io.stdout.write(`${problem.problem}: ${[problem.datastore, problem.name, problem.detail].filter(Boolean).join(' ')}\n`);
  };
  const counts: Counts = { referenced: await checkRows(services, options.quick, report), stored: 0, staging: 0, locks: 0 };
  for (const store of services.datastores.all()) {
    for await (const sha256 of store.list()) {
      counts.stored++;
      if (!(await services.blobs.isReferenced(store.id, sha256))) report({ problem: 'unreferenced', datastore: store.id, name: sha256 });
    }
    const abandoned = await abandonedStaging(store, { live: () => services.instances.live(), unnamedOlderThanMs: UNNAMED_STAGING_MS });
    counts.staging += abandoned.length;
    for (const entry of abandoned) report({ problem: 'abandoned staging', datastore: store.id, name: entry.name, detail: entry.uploadId && 'unfinished multipart upload' });
  }
  const stale = await new RemoteFetchStore(services.db.knex).staleLocks(await services.instances.live(), Date.now() - FETCH_LOCK_STALE_MS);
  counts.locks = stale.length;
  for (const lock of stale) report({ problem: 'stale lock', name: lock.fetchKey, detail: `held by ${lock.owner}` });

  const summary = `checked ${counts.referenced} blobs referenced by rows (${options.quick ? 'presence only' : 'size and sha256'}), `
    + `${counts.stored} stored blobs, staging and fetch locks: ${problems.length} problems`;
  if (options.json) io.stdout.write(`${JSON.stringify({ ok: problems.length === 0, summary, problems }, null, 2)}\n`);
  else io.stdout.write(`${summary}\n`);
  if (problems.length > 0) throw new Error(`storage check found ${problems.length} problems`);
}

/** Each distinct blob rows point at, paged by (datastore, sha256); returns how many. */
async function checkRows(services: Services, quick: boolean, report: (problem: Problem) => void): Promise<number> {
  let checked = 0;
  let after = ['', ''];
  for (;;) {
    const { rows } = await services.db.knex.raw<{ rows: Array<{ datastore_id: string; sha256: string; sizes: number[] }> }>(
      `SELECT datastore_id, sha256, array_agg(DISTINCT size) AS sizes FROM (
         SELECT datastore_id, sha256, size FROM media WHERE sha256 IS NOT NULL
         UNION ALL SELECT datastore_id, sha256, size FROM thumbnails UNION ALL SELECT datastore_id, sha256, size FROM remote_thumbnails) b
       WHERE (datastore_id, sha256) > (?, ?) GROUP BY 1, 2 ORDER BY 1, 2 LIMIT ${PAGE}`, after);
    for (const row of rows) {
      checked++;
      await checkBlob(services, row.datastore_id, row.sha256, row.sizes.map(Number), quick, report);
    }
    if (rows.length < PAGE) return checked;
    after = [rows[rows.length - 1]!.datastore_id, rows[rows.length - 1]!.sha256];
  }
}

async function checkBlob(services: Services, id: string, sha256: string, sizes: number[], quick: boolean, report: (problem: Problem) => void): Promise<void> {
  const store = services.datastores.all().find((s) => s.id === id);
  if (!store) return report({ problem: 'unknown datastore', datastore: id, name: sha256 });
  if (!(await store.has(sha256))) return report({ problem: 'missing', datastore: id, name: sha256 });
  if (quick) return;
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of await store.read(sha256)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  const wrongSizes = sizes.filter((s) => s !== size);
  if (wrongSizes.length > 0) report({ problem: 'wrong size', datastore: id, name: sha256, detail: `rows say ${wrongSizes.join(', ')} bytes, stored ${size}` });
  const digest = hash.digest('hex');
  if (digest !== sha256) report({ problem: 'wrong sha256', datastore: id, name: sha256, detail: `stored bytes hash to ${digest}` });
}
