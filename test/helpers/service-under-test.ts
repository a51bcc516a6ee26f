// The one way tests start the real service: on loopback, with a test database and a config built the
// way a YAML file is. startRepoUnderTest adds a hosted homeserver whose users fetch remote media.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfig } from '../../src/config/config.js';
import type { Database } from '../../src/db/database.js';
import { createLogger } from '../../src/log.js';
import { startService, type RunningService } from '../../src/service.js';
import { openTestDatabase } from './database.js';
import type { SynapseKey } from './keys.js';
import { rawRequest, type RawResponse } from './raw-http.js';
import { s3DatastoreConfig, s3Listing, startS3Server, type TestS3Server } from './s3-server.js';
import { S3Datastore } from '../../src/storage/s3.js';

/** MEDIA_REPO_TEST_DATASTORE=s3: every service under test stores its media in S3 (s3rver on loopback), not a folder. */
export const TEST_DATASTORE: 'file' | 's3' = process.env.MEDIA_REPO_TEST_DATASTORE === 's3' ? 's3' : 'file';

let sharedS3: Promise<TestS3Server> | undefined;
/** One s3rver per test file, started on first use and stopped after the file's tests. */
export function testS3Server(): Promise<TestS3Server> {
  sharedS3 ??= startS3Server();
  return sharedS3;
}
afterAll(async () => {
  const server = sharedS3;
  sharedS3 = undefined;
  await (await server)?.close();
});

/** The default datastore of a test config: a fresh folder, or (s3) a fresh prefix; `shareKey` shares it between instances. */
async function defaultTestDatastore(shareKey?: string): Promise<Record<string, unknown>[] | undefined> {
  if (TEST_DATASTORE !== 's3') return shareKey ? [{ id: 'default', type: 'file', forKinds: ['all'], opts: { path: shareKey } }] : undefined;
  return [await testS3Datastore(shareKey ? `${createHash('sha256').update(shareKey).digest('hex').slice(0, 12)}/` : undefined)];
}

/** The default S3 datastore entry on the file's s3rver, under `prefix` (else a fresh one). */
export async function testS3Datastore(prefix?: string): Promise<Record<string, unknown>> {
  // The file's s3rver runs inside the jest process: on a loaded machine 5 s of silence is load, not an outage.
  return s3DatastoreConfig(await testS3Server(), { id: 'default', prefix, opts: { timeoutMs: 30_000 } });
}

export interface TestServiceOptions {
  /** Shares a database between instances; by default each gets a fresh one. */
  db?: Database;
  /** Collects the service's log lines here (at the config's logLevel). */
  logLines?: string[];
}

/**
 * Starts the service with `raw` over a test config: loopback on any port, silent, a fresh data
 * directory (unless raw.dataDir names one) and a random master key.
 */
export async function startTestService(raw: Record<string, unknown> = {}, options: TestServiceOptions = {}): Promise<RunningService> {
  const dataDir = typeof raw.dataDir === 'string' ? raw.dataDir : mkdtempSync(join(tmpdir(), 'media-repo-'));
  const datastores = raw.datastores ?? (await defaultTestDatastore());
  const config = buildConfig({
    listen: { host: '127.0.0.1', port: 0 },
    logLevel: 'silent',
    masterKey: randomBytes(32).toString('hex'),
    ...raw,
    ...(datastores ? { datastores } : {}),
    dataDir,
  }, join(dataDir, 'config.yaml'));
  const lines = options.logLines;
  const log = createLogger(config.logLevel, lines ? { write: (line: string) => lines.push(line) } : undefined);
  return startService(config, log, options.db ?? (await openTestDatabase()));
}

export interface RepoUnderTest {
  service: RunningService;
  logLines: string[];
  /** GET on the service as a user of the tenant (Host header and access token set); a cut body gives complete: false. */
  get(path: string, headers?: Record<string, string>): Promise<RawResponse>;
  /** Cached remote media rows, remote thumbnail rows, committed blobs, staged and spooled files. */
  inspect(): Promise<{ media: number; thumbnails: number; blobs: string[]; staged: string[]; spooled: string[] }>;
  close(): Promise<void>;
}

export const TEST_TOKEN = 'secret-token';

/**
 * Starts the service (real routes, real auth against a stand-in whoami) for `tenant`, signing with
 * `key` (none: a keyless tenant), logging at info into logLines. `db` shares a database between instances.
 */
export async function startRepoUnderTest(options: {
  tenant: string;
  key?: SynapseKey;
  whoamiUrl: string;
  federation: Record<string, unknown>;
  media?: Record<string, unknown>;
  db?: Database;
  /** Instances sharing a database share their datastore and master key too. */
  storagePath?: string;
  masterKey?: string;
}): Promise<RepoUnderTest> {
  const dir = mkdtempSync(join(tmpdir(), 'media-repo-remote-'));
  let signingKeyPath: string | undefined;
  if (options.key) {
    signingKeyPath = join(dir, 'tenant.signing.key');
    writeFileSync(signingKeyPath, options.key.file);
  }
  const logLines: string[] = [];
  const service = await startTestService({
    logLevel: 'info',
    dataDir: dir,
    ...(options.masterKey ? { masterKey: options.masterKey } : {}),
    homeservers: [{ name: options.tenant, clientApi: options.whoamiUrl, ...(signingKeyPath ? { signingKeyPath } : {}) }],
    federation: options.federation,
    ...(options.media ? { media: options.media } : {}),
    ...(options.storagePath ? { datastores: await defaultTestDatastore(options.storagePath) } : {}),
  }, { db: options.db, logLines });
  const store = service.services.datastores.get('default');
  const root = store instanceof S3Datastore ? '' : (service.services.config.datastores[0]!.opts as { path: string }).path;
  const listFiles = (folder: string) => {
    try {
      return readdirSync(folder, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
    } catch {
      return [];
    }
  };
  return {
    service,
    logLines,
    get: (path, headers = {}) => rawRequest(`${service.url}${path}`, {
      headers: { Host: options.tenant, Authorization: `Bearer ${TEST_TOKEN}`, ...headers }, allowIncomplete: true,
    }),
    inspect: async () => {
      const knex = service.services.db.knex;
      const count = async (table: string) => Number((await knex(table).count<{ c: string }[]>({ c: '*' }))[0]!.c);
      return {
        media: Number((await knex('media').where({ is_remote: true }).count<{ c: string }[]>({ c: '*' }))[0]!.c),
        thumbnails: await count('remote_thumbnails'),
        ...(store instanceof S3Datastore ? await s3Listing(store, await testS3Server()) : {
          blobs: listFiles(root).filter((f) => !f.startsWith(join(root, '.tmp'))),
          staged: listFiles(join(root, '.tmp')),
        }),
        spooled: listFiles(join(dir, 'remote-spool')),
      };
    },
    close: () => service.close(),
  };
}

