// `media-repo storage transfer` as its own process, killed with SIGKILL twice mid-transfer, then run to
// the end: every blob is readable and verified in the target, nothing is left in the source, and no
// blob is orphaned (staging leftovers of the killed runs go with `storage sweep` at once: their instances are dead).
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { run } from '../../src/cli/media-repo.js';
import { loadConfigFile } from '../../src/config/config.js';
import { createLogger } from '../../src/log.js';
import { closeServices, openServices, type Services } from '../../src/service.js';
import type { S3Datastore } from '../../src/storage/s3.js';
import { createScratchDatabase, REAL_POSTGRES_URL } from '../helpers/database.js';
import { s3DatastoreConfig, startS3Server, type TestS3Server } from '../helpers/s3-server.js';

const CLI = 'dist/src/cli/media-repo.js';
const BLOBS = Number(process.env.KILL_TEST_BLOBS ?? 1000);
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Runs the built CLI; resolves with its exit once `killWhen` (if given) saw a line and the child was killed. */
function transferProcess(configFile: string, killWhen?: (line: string) => boolean): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  const child: ChildProcess = spawn(process.execPath, [CLI, '-config', configFile, 'storage', 'transfer', '-from', 'files', '-to', 'bucket'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    if (killWhen && stdout.split('\n').some(killWhen)) setTimeout(() => child.kill('SIGKILL'), Math.floor(Math.random() * 150));
  });
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, stdout, stderr })));
}

async function runCli(argv: string[]): Promise<{ code: number; stdout: string }> {
  const stdout = new PassThrough();
  const out: Buffer[] = [];
  stdout.on('data', (c: Buffer) => out.push(c));
  const code = await run(argv, { stdout, stderr: new PassThrough() });
  return { code, stdout: Buffer.concat(out).toString() };
}

describe('storage transfer killed twice', () => {
  const dir = mkdtempSync(join(tmpdir(), 'transfer-kill-'));
  const configFile = join(dir, 'config.yaml');
  let server: TestS3Server;
  let scratch: Awaited<ReturnType<typeof createScratchDatabase>> | undefined;
  const prefix = `kill-${randomBytes(4).toString('hex')}/`;
  const open = () => openServices(loadConfigFile(configFile), createLogger('silent'));

  beforeAll(async () => {
    // The child runs the compiled CLI: `npm test` builds it first (pretest); a stale build would test old code.
    if (!existsSync(CLI) || statSync(CLI).mtimeMs < statSync('src/media/datastore-transfer.ts').mtimeMs) {
      throw new Error(`${CLI} is missing or older than the sources: run npx tsc -p tsconfig.json (npm test does)`);
    }
    server = await startS3Server();
    scratch = REAL_POSTGRES_URL ? await createScratchDatabase() : undefined;
    const bucket = s3DatastoreConfig(server, { id: 'bucket', prefix });
    writeFileSync(configFile, JSON.stringify({
      ...(scratch ? { database: { url: scratch.url } } : {}),
      dataDir: join(dir, 'data'),
      masterKey: randomBytes(32).toString('hex'),
      // A short grace before source copies are deleted keeps the test quick.
      cacheInvalidationPollMs: 100,
      homeservers: [{ name: 'kill.example', clientApi: 'http://127.0.0.1:1' }],
      datastores: [{ id: 'files', type: 'file', forKinds: ['all'], opts: { path: join(dir, 'files') } }, bucket],
    }));
  });
  afterAll(async () => {
    await server.close();
    await scratch?.drop();
  });

  test(`${BLOBS} blobs: killed twice, re-run, every blob verified in the target, nothing orphaned`, async () => {
    const t0 = Date.now();
    const services = await open();
    const expected = new Map<string, string>();
    try {
      const files = services.datastores.get('files');
      // Seeded straight into the file datastore's layout and the table: fast, and what a long-running service leaves.
      const rows = [];
      for (let i = 0; i < BLOBS; i++) {
        const bytes = randomBytes(1000 + (i % 7) * 3000);
        const digest = sha256(bytes);
        mkdirSync(join(dir, 'files', digest.slice(0, 2), digest.slice(2, 4)), { recursive: true });
        writeFileSync(join(dir, 'files', digest.slice(0, 2), digest.slice(2, 4), digest), bytes);
        rows.push({
          server_name: 'kill.example', media_id: `m${i}`, is_remote: false, user_id: '@u:kill.example', content_type: 'application/octet-stream',
          datastore_id: 'files', sha256: digest, size: bytes.length, created_ts: 1, stored_ts: 1,
        });
        expected.set(`m${i}`, digest);
      }
      await services.db.knex.batchInsert('media', rows, 250);
      console.log(`seeded in ${Date.now() - t0} ms`);
      // The same bytes under a second ID: one blob, two rows.
      const shared = await files.writeStream(await files.read(expected.get('m0')!), { maxBytes: 1e9 });
      await services.media.insertMedia({ serverName: 'kill.example', mediaId: 'shared', isRemote: false, userId: null, contentType: 'text/plain', uploadName: null }, shared);
      expected.set('shared', shared.sha256);
    } finally {
      await closeServices(services);
    }

    const started = Date.now();
    const first = await transferProcess(configFile, (line) => /^transfer: ([1-9]\d*)\//.test(line));
    expect(first.signal).toBe('SIGKILL');
    console.log(`first run killed after ${Date.now() - started} ms`);
    const second = await transferProcess(configFile, (line) => /^transfer: ([1-9]\d*)\//.test(line));
    expect(second.signal).toBe('SIGKILL');
    console.log(`second run killed after ${Date.now() - started} ms`);
    const last = await transferProcess(configFile);
    expect(last.stderr).not.toMatch(/not moved/);
    expect(last.code).toBe(0);
    expect(last.stdout).toMatch(/moved \d+ of \d+ blobs from files to bucket, 0 failed\n$/);

    console.log(`transfer runs took ${Date.now() - started} ms`);
    const after = await open();
    try {
      const rows = await after.db.knex('media').select('media_id', 'sha256', 'datastore_id');
      expect(rows).toHaveLength(BLOBS + 1);
      const bucket = after.datastores.get('bucket') as S3Datastore;
      for (const row of rows as Array<{ media_id: string; sha256: string; datastore_id: string }>) {
        expect(row).toEqual({ media_id: row.media_id, sha256: expected.get(row.media_id), datastore_id: 'bucket' });
        expect(sha256(await readAll(await bucket.read(row.sha256)))).toBe(row.sha256);
      }
      expect(await listAll(after, 'files')).toEqual([]);
      expect((await listAll(after, 'bucket')).sort()).toEqual([...new Set(expected.values())].sort());
      expect(Number((await after.db.knex('pending_blob_deletions').count<{ c: string }[]>({ c: '*' }))[0]!.c)).toBe(0);
      // A kill mid-copy leaves at most one staged copy per blob in flight (8), which only the staging sweep removes.
      const staged = await stagingKeys(bucket);
      expect(staged.length + server.openUploads(`${prefix}.staging/`).length).toBeLessThanOrEqual(2 * 8);
    } finally {
      await closeServices(after);
    }
    const swept = await runCli(['-config', configFile, 'storage', 'sweep']);
    expect(swept.code).toBe(0);
    expect(swept.stdout).toMatch(/^checked \d+ stored files, deleted 0 that nothing referenced\n/);
    const checked = await runCli(['-config', configFile, 'storage', 'check']);
    const blobs = new Set(expected.values()).size;
    expect(checked).toEqual({ code: 0, stdout: `checked ${blobs} blobs referenced by rows (size and sha256), ${blobs} stored blobs, staging and fetch locks: 0 problems\n` });
    const final = await open();
    try {
      expect(await stagingKeys(final.datastores.get('bucket') as S3Datastore)).toEqual([]);
      expect(server.openUploads(prefix)).toEqual([]);
    } finally {
      await closeServices(final);
    }
  }, 600_000);
});

async function listAll(services: Services, id: string): Promise<string[]> {
  const out: string[] = [];
  for await (const digest of services.datastores.get(id).list()) out.push(digest);
  return out;
}

async function stagingKeys(bucket: S3Datastore): Promise<string[]> {
  const page = await bucket.client.send(new ListObjectsV2Command({ Bucket: bucket.options.bucketName, Prefix: `${bucket.options.prefix}.staging/` }));
  return (page.Contents ?? []).map((o) => o.Key!);
}
