// A purge of 10,000 cached remote media as a task, run by a separate service process that is killed with
// SIGKILL part-way; another instance takes the task over when its heartbeat goes stale and finishes it.
// Between the two, no row points at missing bytes; at the end no row, no blob and no pending release is left.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadConfigFile } from '../../src/config/config.js';
import { createLogger } from '../../src/log.js';
import { closeServices, openServices, startService } from '../../src/service.js';
import { createScratchDatabase, REAL_POSTGRES_URL } from '../helpers/database.js';
import { blobFilesIn } from '../helpers/media-fixtures.js';
import { rawRequest } from '../helpers/raw-http.js';

const ROWS = 10_000;
const SECRET = 'task-test-shared-secret';
const dir = mkdtempSync(join(tmpdir(), 'media-repo-task-'));
const configFile = join(dir, 'config.yaml');
const storage = join(dir, 'media');
let scratch: Awaited<ReturnType<typeof createScratchDatabase>> | undefined;
let child: ChildProcess | undefined;

beforeAll(async () => {
  // The child runs the compiled service, as in production.
  await promisify(execFile)(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json']);
  scratch = REAL_POSTGRES_URL ? await createScratchDatabase() : undefined;
  writeFileSync(configFile, [
    'listen: {host: 127.0.0.1, port: 0}',
    'logLevel: info',
    `dataDir: ${dir}`,
    `masterKey: "${'ab'.repeat(32)}"`,
    scratch ? `database: {url: "${scratch.url}"}` : '',
    `datastores: [{id: default, type: file, forKinds: [all], opts: {path: ${storage}}}]`,
    'homeservers: [{name: a.example, clientApi: "http://127.0.0.1:9"}]',
    `sharedSecretAuth: {token: ${SECRET}}`,
    'admin: {taskHeartbeatMs: 200, taskStaleMs: 1500}',
  ].join('\n'));
}, 120_000);

afterAll(async () => {
  child?.kill('SIGKILL');
  await scratch?.drop();
});

async function seed(): Promise<number> {
  const services = await openServices(loadConfigFile(configFile), createLogger('silent'));
  try {
    const store = services.datastores.get('default');
    const rows = [];
    for (let i = 0; i < ROWS; i++) {
      const bytes = Buffer.from(`bulk media ${i}`);
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      // Written where the file datastore keeps blobs; the rows below reference them.
      const path = join(storage, sha256.slice(0, 2), sha256.slice(2, 4));
      mkdirSync(path, { recursive: true });
      writeFileSync(join(path, sha256), bytes);
      rows.push({ server_name: 'bulk.test', media_id: `m${i}`, is_remote: true, content_type: 'text/plain', sha256, datastore_id: 'default', size: bytes.length, created_ts: 1, stored_ts: 1 });
    }
    expect(await store.has(rows[0]!.sha256)).toBe(true);
    for (let i = 0; i < rows.length; i += 1000) await services.db.knex('media').insert(rows.slice(i, i + 1000));
    const answer = await services.admin.purges.request({ kind: 'server', serverName: 'bulk.test' }, { actor: 'test', homeserver: null }, { dryRun: false, background: false });
    expect(answer).toMatchObject({ count: ROWS, bytes: expect.any(Number) });
    return (answer as { task_id: number }).task_id;
  } finally {
    await closeServices(services);
  }
}

function startChild(): Promise<string> {
  child = spawn(process.execPath, ['dist/src/cli/media-repo.js', 'serve', '-config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const url = /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(output)?.[1];
      if (url) resolve(url);
    };
    child!.stdout!.on('data', onData);
    child!.stderr!.on('data', (c: Buffer) => (output += c.toString()));
    child!.once('exit', (code) => reject(new Error(`the service exited (${code}): ${output}`)));
  });
}

async function taskOf(url: string, id: number): Promise<Record<string, unknown>> {
  // Every request names a hosted homeserver by its Host, admin ones too.
  const res = await rawRequest(`${url}/_matrix/media/unstable/admin/tasks/${id}`, { headers: { host: 'a.example', authorization: `Bearer ${SECRET}` } });
  return res.json();
}

test('killed mid-purge, the task is resumed by the next instance and completes; nothing is half-deleted', async () => {
  const taskId = await seed();
  expect(blobFilesIn(storage)).toHaveLength(ROWS);
  const url = await startChild();
  let progress = { done: 0, total: 0 };
  while (progress.done < 1000) {
    await new Promise((r) => setTimeout(r, 50));
    progress = (await taskOf(url, taskId)).progress as typeof progress;
  }
  expect(progress.total).toBe(ROWS);
  child!.kill('SIGKILL');
  await new Promise((r) => child!.once('exit', r));
  child = undefined;

  // Between the two instances: every remaining row's bytes are there; the task is unfinished.
  const between = await openServices(loadConfigFile(configFile), createLogger('silent'));
  const remaining: Array<{ sha256: string }> = await between.db.knex('media').where({ server_name: 'bulk.test' }).select('sha256');
  const task = await between.admin.tasks.get(taskId);
  await closeServices(between);
  expect(remaining.length).toBeGreaterThan(0);
  expect(remaining.length).toBeLessThan(ROWS);
  const files = new Set(blobFilesIn(storage));
  expect(remaining.every((row) => files.has(row.sha256))).toBe(true);
  expect(task!.end_ts).toBeNull();

  const resumed = await startService(loadConfigFile(configFile), createLogger('silent'));
  try {
    let state: Record<string, unknown> = {};
    while (state.is_finished !== true) {
      await new Promise((r) => setTimeout(r, 100));
      state = await taskOf(resumed.url, taskId);
    }
    expect(state).toMatchObject({ error_message: '', is_finished: true });
    expect(state.progress).toMatchObject({ total: ROWS, done: ROWS });
    expect(state.result).toMatchObject({ count: ROWS });
    const knex = resumed.services.db.knex;
    expect(await knex('media').where({ server_name: 'bulk.test' })).toEqual([]);
    expect(await knex('blob_releases')).toEqual([]);
    expect(blobFilesIn(storage)).toEqual([]);
  } finally {
    await resumed.close();
  }
  expect(existsSync(configFile)).toBe(true);
}, 300_000);
