// initdb of an embedded PGlite takes seconds and runs for every database a test opens; it is done once per
// run here, in a child (its WebAssembly heap is large), and each test database starts from the dump.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const DUMP = `require(process.argv[1]).PGlite.create()
  .then(async (db) => { const file = await db.dumpDataDir('none'); require('node:fs').writeFileSync(process.argv[2], Buffer.from(await file.arrayBuffer())); await db.close(); })`;

export function createPgliteTemplate(root) {
  if (process.env.MEDIA_REPO_TEST_DATABASE_URL) return;
  const path = join(root, 'pglite-template.tar');
  execFileSync(process.execPath, ['-e', DUMP, createRequire(import.meta.url).resolve('@electric-sql/pglite'), path]);
  process.env.MEDIA_REPO_TEST_PGLITE_TEMPLATE = path;
}
