// One knex instance over `pg`: a real PostgreSQL from the config, or embedded PGlite served on a loopback
// socket so that the very same driver (and so the same result types) is used in both cases.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { promisify } from 'node:util';
import knexFactory, { type Knex } from 'knex';
import pg from 'pg';
import { migrationSource } from './migrations.js';
import { makeOwnerOnly } from './private-files.js';

// bigint columns hold millisecond timestamps and byte sizes, all far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

export interface Database {
  knex: Knex;
  /** True when running on the embedded PGlite (one connection: no cross-connection locking). */
  embedded: boolean;
  close(): Promise<void>;
  /** A connection of its own, outside the pool, for session state (advisory locks); not on PGlite. */
  connectSession?(): Promise<pg.Client>;
}

export interface DatabaseOptions {
  /** A postgres:// URL; without one the embedded database in `dataDir` is used. */
  url?: string;
  dataDir: string;
  poolMax: number;
}

/** How long start-up waits for a PostgreSQL that does not answer before giving up. */
export const CONNECT_TIMEOUT_MS = 10_000;

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  if (options.url) {
    const knex = knexFactory({
      client: 'pg',
      connection: { connectionString: options.url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS },
      pool: { min: 0, max: options.poolMax },
      acquireConnectionTimeout: CONNECT_TIMEOUT_MS + 1000,
      // A failed connection is reported once, by the caller; knex would also print its stack trace.
      log: { warn: (message: string) => void (String(message).startsWith('Acquire connection error') || console.warn(message)) },
    });
    try {
      await knex.raw('SELECT 1');
    } catch (error) {
      await knex.destroy();
      throw new Error(`cannot reach the database at ${describeUrl(options.url)}: ${reasonOf(error)}; check database.url`);
    }
    const connectSession = async () => {
      const session = new pg.Client({ connectionString: options.url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
      await session.connect();
      return session;
    };
    return { knex, embedded: false, close: () => knex.destroy(), connectSession };
  }
  return openEmbedded(options.dataDir === ':memory:' ? undefined : join(options.dataDir, 'pglite'));
}

/** Host, port and database name: never the password. */
function describeUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname}:${parsed.port || '5432'}${parsed.pathname}`;
  } catch {
    return 'database.url (not a valid URL)';
  }
}

function reasonOf(error: unknown): string {
  const { code, message } = error as { code?: string; message?: string };
  if (code) return code;
  // knex's pool timeout and pg's connect timeout both say "timeout"; anything else is pg's own message.
  return /timeout/i.test(message ?? '') ? `no answer within ${CONNECT_TIMEOUT_MS / 1000} s` : (message ?? String(error)).split('\n')[0]!;
}

// Our tables hold metadata only: PostgreSQL's default 128 MB of buffers would be most of our memory.
const EMBEDDED_SETTINGS = ['shared_buffers=16MB', 'work_mem=1MB'];

/**
 * Embedded PGlite; without a directory it lives in memory (tests), started from `template` (a data
 * directory dumped by PGlite) when given, which skips initdb.
 */
export async function openEmbedded(directory?: string, template?: Blob): Promise<Database> {
  const { PGlite } = await import('@electric-sql/pglite');
  const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket');
  if (directory) {
    mkdirSync(directory, { recursive: true, mode: 0o700 });
    if (!existsSync(join(directory, 'PG_VERSION'))) await initialiseInChildProcess(directory);
  }
  const db = await PGlite.create(directory, { postgresqlconf: EMBEDDED_SETTINGS, ...(template && !directory ? { loadDataDir: template } : {}) });
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0 });
  await server.start();
  const [host, port] = server.getServerConn().split(':');
  // PGlite runs one session, so a pool of one keeps every transaction on its own connection.
  const knex = knexFactory({
    client: 'pg',
    connection: { host, port: Number(port), user: 'postgres', database: 'postgres' },
    pool: { min: 0, max: 1 },
  });
  if (directory) {
    // After a first query, which writes the relation cache files.
    await knex.raw('SELECT 1');
    makeOwnerOnly(directory);
  }
  return {
    knex,
    embedded: true,
    close: async () => {
      await knex.destroy();
      await server.stop();
      await db.close();
      if (directory) makeOwnerOnly(directory);
    },
  };
}

/**
 * initdb leaves about half a GiB in PGlite's WebAssembly heap, which never shrinks; run in a child that
 * exits, it costs the service nothing, and a first start uses as little memory as any other.
 */
async function initialiseInChildProcess(directory: string): Promise<void> {
  const entry = createRequire(import.meta.url).resolve('@electric-sql/pglite');
  const script = 'require(process.argv[1]).PGlite.create(process.argv[2]).then((db) => db.close())';
  await promisify(execFile)(process.execPath, ['-e', script, entry, directory]);
}

export async function migrateToLatest(knex: Knex): Promise<string[]> {
  const [, applied] = (await knex.migrate.latest({ migrationSource })) as [number, string[]];
  return applied;
}
