// A fresh, migrated database per test file: a new database on the real PostgreSQL named by
// MEDIA_REPO_TEST_DATABASE_URL (CI), else an in-memory embedded PGlite.
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, renameSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import knexFactory from 'knex';
import { migrateToLatest, openDatabase, openEmbedded, type Database } from '../../src/db/database.js';

export const REAL_POSTGRES_URL = process.env.MEDIA_REPO_TEST_DATABASE_URL;

export async function openTestDatabase(): Promise<Database> {
  const db = await openBlankTestDatabase();
  await migrateToLatest(db.knex);
  return db;
}

/** Not migrated: for tests of migrations themselves. */
export async function openBlankTestDatabase(): Promise<Database> {
  if (!REAL_POSTGRES_URL) return openEmbedded(undefined, await pgliteTemplate());
  const scratch = await createScratchDatabase();
  const db = await openDatabase({ url: scratch.url, dataDir: ':memory:', poolMax: 5 });
  return {
    ...db,
    close: async () => {
      await db.close();
      await scratch.drop();
    },
  };
}

let template: Promise<Blob | undefined> | undefined;

const DUMP = `require(process.argv[1]).PGlite.create()
  .then(async (db) => { const file = await db.dumpDataDir('none'); require('node:fs').writeFileSync(process.argv[2], Buffer.from(await file.arrayBuffer())); await db.close(); })`;

/**
 * The run's template, in the run's temporary folder (test/setup/temp-root.js), made by its first caller in a
 * child (initdb leaves a large WebAssembly heap), written aside then renamed so no reader sees half; a run
 * that opens no database (a mutation run's) never makes it.
 */
function pgliteTemplatePath(): string | undefined {
  const root = process.env.MEDIA_REPO_TEST_TMP_ROOT;
  if (!root) return undefined;
  const path = join(root, 'pglite-template.tar');
  if (existsSync(path)) return path;
  const partial = `${path}.${process.pid}.part`;
  execFileSync(process.execPath, ['-e', DUMP, createRequire(import.meta.url).resolve('@electric-sql/pglite'), partial]);
  renameSync(partial, path);
  return path;
}

/** A freshly initialised data directory to start each in-memory PGlite from, skipping its initdb. */
function pgliteTemplate(): Promise<Blob | undefined> {
  const path = pgliteTemplatePath();
  template ??= path ? readFile(path).then((bytes) => new Blob([bytes])) : Promise.resolve(undefined);
  return template;
}

/** A new, empty database on the real PostgreSQL, for code that connects by URL itself (the CLI). */
export async function createScratchDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  if (!REAL_POSTGRES_URL) throw new Error('MEDIA_REPO_TEST_DATABASE_URL is not set');
  const name = `test_${randomBytes(6).toString('hex')}`;
  const admin = knexFactory({ client: 'pg', connection: REAL_POSTGRES_URL, pool: { min: 0, max: 1 } });
  await admin.raw(`CREATE DATABASE ${name}`);
  const url = new URL(REAL_POSTGRES_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      await admin.raw(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.destroy();
    },
  };
}

/**
 * Two instances' databases on one database (close the second first). On a real PostgreSQL each has its own connection pool to it;
 * on the embedded PGlite (one process, one connection) they share the Database, which still gives each
 * instance its own services and in-process state.
 */
export async function openTwoDatabases(): Promise<[Database, Database]> {
  const first = await openTestDatabase();
  if (!REAL_POSTGRES_URL) return [first, { ...first, close: async () => undefined }];
  const url = (first.knex.client.config as { connection: { connectionString: string } }).connection.connectionString;
  return [first, await openDatabase({ url, dataDir: ':memory:', poolMax: 5 })];
}
