// The service's hot queries on the embedded database, opened as the service opens it, in a loop: prints
// PGlite's WebAssembly memory (its size, which can only grow, and what of it is resident), PostgreSQL's
// memory contexts inside it and the process's RSS every N queries, to tell a growth of the database's
// memory from one of the process around it. Each round is an upload (transaction, advisory lock, insert),
// a download's row lookup (uncached), and every 20th round a thumbnail's lookup, count and insert; access
// times are flushed every 500 rounds.
// Run: npm run build && node dist/bench/pglite-memory.js [rounds, default 30000] [print every, default 5000]
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { migrateToLatest, openEmbedded } from '../src/db/database.js';
import { AccessTimes } from '../src/media/access-times.js';
import { BlobReferences } from '../src/media/blob-references.js';
import { createLogger } from '../src/log.js';
import { MediaStore } from '../src/media/media-store.js';
import type { Datastores } from '../src/storage/datastores.js';
import type { StagedBlob } from '../src/storage/datastore.js';
import { memoryOf } from './media-processes.js';
import { residentPartsOf } from './memory-maps.js';

const ROUNDS = Number(process.argv[2] ?? 30_000);
const EVERY = Number(process.argv[3] ?? 5000);
const MiB = 1024 * 1024;
const TENANT = 'bench.example';

// Keeps the instance openEmbedded creates, so that the database is opened exactly as the service opens it.
let opened: PGlite | undefined;
const create = PGlite.create.bind(PGlite) as (...args: unknown[]) => Promise<PGlite>;
(PGlite as unknown as { create: typeof create }).create = async (...args) => (opened = await create(...args));

interface PostgresModule { wasmMemory: WebAssembly.Memory; _TopMemoryContext: number; _MemoryContextMemAllocated(context: number, recurse: boolean): number | bigint }

/** A blob whose bytes are nowhere: the rows are what is measured. */
function stagedBlob(): StagedBlob {
  const sha256 = createHash('sha256').update(randomBytes(16)).digest('hex');
  return { datastoreId: 'default', sha256, size: 4096, publish: async () => {}, commit: async () => {}, discard: async () => {} };
}

const work = mkdtempSync(join(tmpdir(), 'bench-pglite-memory-'));
const db = await openEmbedded(join(work, 'pglite'));
try {
  await migrateToLatest(db.knex);
  const module = opened!.Module as unknown as PostgresModule;
  const noDatastores = { get: () => ({ delete: async () => {}, has: async () => true }) } as unknown as Datastores;
  const store = new MediaStore(db.knex, new BlobReferences(db.knex, noDatastores), 0);
  const access = new AccessTimes(db.knex, createLogger('warn'));
  const report = (round: number) => {
    const top = new Uint32Array(module.wasmMemory.buffer)[module._TopMemoryContext >> 2]!;
    const contexts = Number(module._MemoryContextMemAllocated(top, true)) / MiB;
    console.log(`${String(round).padStart(7)} rounds: WASM memory ${(module.wasmMemory.buffer.byteLength / MiB).toFixed(1)} MiB, `
      + `${(residentPartsOf(process.pid).wasm / MiB).toFixed(1)} resident; PostgreSQL's memory contexts ${contexts.toFixed(2)} MiB; `
      + `RSS ${(memoryOf(process.pid, 'VmRSS') / MiB).toFixed(1)} MiB (V8 heap ${(process.memoryUsage().heapUsed / MiB).toFixed(1)})`);
  };
  const ids: string[] = [];
  report(0);
  for (let round = 1; round <= ROUNDS; round++) {
    const mediaId = randomBytes(12).toString('base64url');
    await store.insertMedia({ serverName: TENANT, mediaId, isRemote: false, userId: `@u:${TENANT}`, contentType: 'application/octet-stream', uploadName: null }, stagedBlob());
    if (ids.length < 40) ids.push(mediaId);
    const id = ids[round % ids.length]!;
    await store.get(TENANT, id);
    access.record(TENANT, id);
    if (round % 20 === 0) {
      const key = { serverName: TENANT, mediaId: id, width: 16 + (round % 300), height: 16 + (round % 220), method: round % 40 ? 'crop' as const : 'scale' as const, animated: false };
      await store.getThumbnail(key);
      await store.countThumbnails(TENANT, id);
      await store.insertThumbnail(key, 'image/png', stagedBlob());
    }
    if (round % 500 === 0) await access.flush();
    if (round % EVERY === 0) report(round);
  }
} finally {
  await db.close();
  rmSync(work, { recursive: true, force: true });
}
