// One upstream request per remote media, however many clients ask at once and with whatever options:
// in one instance (in-process single-flight) and across instances (the lock row in PostgreSQL).
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { Instances } from '../../src/db/instances.js';
import { startStandInHomeserver, type StandInHomeserver } from '../helpers/stand-in-homeserver.js';
import { openTwoDatabases, REAL_POSTGRES_URL } from '../helpers/database.js';
import { generateSynapseKey, type SynapseKey } from '../helpers/keys.js';
import { patternBytes } from '../helpers/media-fixtures.js';
import { startRemoteHomeserver, type RemoteHomeserver } from '../helpers/remote-homeserver.js';
import { startRepoUnderTest, TEST_TOKEN, type RepoUnderTest } from '../helpers/service-under-test.js';
import { describeWithPython } from '../helpers/python-available.js';

const TENANT = 'tenant.test';
const REMOTE = 'remote.test';
const DOWNLOADS = '/_matrix/federation/v1/media/download/';

let key: SynapseKey;
let remote: RemoteHomeserver;
let whoami: StandInHomeserver;

function federation() {
  return { serverOverrides: { [REMOTE]: remote.url }, ipAllowlist: ['127.0.0.1/32'], failureCacheMs: 0 };
}

/** A promise the remote waits on before answering, so every client request is in flight first. */
function gate(): { opened: Promise<void>; open(): void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

beforeAll(async () => {
  key = await generateSynapseKey('k1');
  remote = await startRemoteHomeserver({ serverName: REMOTE, trustedKeys: { [TENANT]: { [key.keyId]: key.publicKey } } });
  whoami = await startStandInHomeserver({ [TEST_TOKEN]: { userId: '@alice:tenant.test' } });
});

afterAll(async () => {
  await Promise.all([remote.close(), whoami.close()]);
});

describeWithPython('one instance', () => {
  let repo: RepoUnderTest;
  beforeAll(async () => {
    repo = await startRepoUnderTest({ tenant: TENANT, key, whoamiUrl: whoami.url, federation: federation() });
  });
  afterAll(async () => {
    await repo.close();
  });

  test('20 concurrent requests for uncached media make one upstream request', async () => {
    const bytes = patternBytes(2 * 1024 * 1024, 31);
    const held = gate();
    remote.media.set('popular', { kind: 'multipart', bytes, contentType: 'image/png', gate: held.opened, chunkSize: 64 * 1024 });
    const responses = Array.from({ length: 20 }, () => repo.get(`/_matrix/client/v1/media/download/${REMOTE}/popular`));
    await until(() => remote.requestsFor(`${DOWNLOADS}popular`).length === 1);
    held.open();
    for (const response of await Promise.all(responses)) {
      expect(response.status).toBe(200);
      expect(response.body.equals(bytes)).toBe(true);
    }
    expect(remote.requestsFor(`${DOWNLOADS}popular`)).toHaveLength(1);
    await repo.service.services.remoteMedia.settled();
    expect((await repo.inspect()).media).toBe(1);
  });

  test('100 concurrent clients of one remote media streamed in small chunks each get every byte exactly, from one upstream request', async () => {
    const bytes = patternBytes(1024 * 1024 + 777, 33); // past a spool block boundary, ending mid-block
    remote.media.set('crowd', { kind: 'multipart', bytes, contentType: 'video/mp4', chunkSize: 16 * 1024 + 3 });
    const responses = await Promise.all(Array.from({ length: 100 }, () => repo.get(`/_matrix/client/v1/media/download/${REMOTE}/crowd`)));
    for (const response of responses) {
      expect(response.status).toBe(200);
      expect(response.body.equals(bytes)).toBe(true);
    }
    expect(remote.requestsFor(`${DOWNLOADS}crowd`)).toHaveLength(1);
  });

  test('mixed options (file names, timeouts, the legacy endpoint) still share one request, without errors', async () => {
    const bytes = patternBytes(300_000, 32);
    const held = gate();
    remote.media.set('mixed', { kind: 'multipart', bytes, contentType: 'text/plain', disposition: 'attachment; filename="m.txt"', gate: held.opened });
    const paths = [
      '', '/a.txt', '/b.txt', '?timeout_ms=1000', '?timeout_ms=60000', '/c.txt?timeout_ms=5000', '', '/a.txt',
    ].map((suffix) => `/_matrix/client/v1/media/download/${REMOTE}/mixed${suffix}`);
    const legacy = `/_matrix/media/v3/download/${REMOTE}/mixed?allow_remote=true`;
    const responses = [...paths, legacy].map((path) => repo.get(path));
    await until(() => remote.requestsFor(`${DOWNLOADS}mixed`).length === 1);
    await new Promise((resolve) => setTimeout(resolve, 100));
    held.open();
    const answered = await Promise.all(responses);
    for (const response of answered.slice(0, paths.length)) {
      expect(response.status).toBe(200);
      expect(response.body.equals(bytes)).toBe(true);
    }
    // Remote media cached now is newer than the legacy freeze: the unauthenticated endpoint may not serve it.
    expect(answered.at(-1)!.status).toBe(404);
    expect(remote.requestsFor(`${DOWNLOADS}mixed`)).toHaveLength(1);
    expect(repo.logLines.filter((line) => /duplicate key|23505/.test(line))).toEqual([]);
  });

  test('concurrent thumbnails: one upstream request per size', async () => {
    const held = gate();
    const png = await sharp({ create: { width: 20, height: 20, channels: 3, background: '#336699' } }).png().toBuffer();
    remote.media.set('pics', { kind: 'multipart', bytes: patternBytes(100), gate: held.opened, thumbnail: { bytes: png, contentType: 'image/png' } });
    const sizes = ['width=32&height=32&method=crop', 'width=96&height=96&method=crop'];
    const responses = Array.from({ length: 10 }, (_, i) => repo.get(`/_matrix/client/v1/media/thumbnail/${REMOTE}/pics?${sizes[i % 2]}`));
    await until(() => remote.requestsFor('/_matrix/federation/v1/media/thumbnail/pics').length === 2);
    held.open();
    for (const response of await Promise.all(responses)) expect(response.status).toBe(200);
    expect(remote.requestsFor('/_matrix/federation/v1/media/thumbnail/pics')).toHaveLength(2);
  });

  test('a lock row left by a dead instance is taken over once stale', async () => {
    remote.media.set('orphan', { kind: 'multipart', bytes: Buffer.from('rescued') });
    const knex = repo.service.services.db.knex;
    await knex('remote_fetches').insert({ fetch_key: `download ${REMOTE} orphan`, owner: 'dead-instance', heartbeat_ts: Date.now() - 60_000 });
    const response = await repo.get(`/_matrix/client/v1/media/download/${REMOTE}/orphan`);
    expect(response.body.toString()).toBe('rescued');
    await repo.service.services.remoteMedia.settled();
    expect(await knex('remote_fetches').where({ fetch_key: `download ${REMOTE} orphan` })).toEqual([]);
  });

  test('a lock row of a dead instance is taken over at once, though recently heartbeated', async () => {
    remote.media.set('crashed', { kind: 'multipart', bytes: Buffer.from('taken over') });
    const knex = repo.service.services.db.knex;
    await knex('remote_fetches').insert({ fetch_key: `download ${REMOTE} crashed`, owner: `${randomUUID()}/fetch`, heartbeat_ts: Date.now() });
    const started = Date.now();
    const response = await repo.get(`/_matrix/client/v1/media/download/${REMOTE}/crashed`);
    expect(response.body.toString()).toBe('taken over');
    // Well within the 30 s a silent holder keeps its lock.
    expect(Date.now() - started).toBeLessThan(5000);
  });

  test('a live lock row makes the request wait; when it goes without a result, this instance fetches', async () => {
    remote.media.set('waited', { kind: 'multipart', bytes: Buffer.from('after the wait') });
    const knex = repo.service.services.db.knex;
    // Another instance, alive: registered on the same database.
    const busy = await Instances.register(repo.service.services.db, () => undefined);
    try {
      await knex('remote_fetches').insert({ fetch_key: `download ${REMOTE} waited`, owner: `${busy.id}/fetch`, heartbeat_ts: Date.now() });
      const response = repo.get(`/_matrix/client/v1/media/download/${REMOTE}/waited`);
      await new Promise((resolve) => setTimeout(resolve, 400));
      expect(remote.requestsFor(`${DOWNLOADS}waited`)).toHaveLength(0);
      await knex('remote_fetches').where({ owner: `${busy.id}/fetch` }).delete();
      expect((await response).body.toString()).toBe('after the wait');
      expect(remote.requestsFor(`${DOWNLOADS}waited`)).toHaveLength(1);
    } finally {
      await busy.close();
    }
  });
});

describeWithPython('two instances on one database', () => {
  let a: RepoUnderTest;
  let b: RepoUnderTest;
  beforeAll(async () => {
    const [dbA, dbB] = await openTwoDatabases();
    const shared = { storagePath: mkdtempSync(join(tmpdir(), 'shared-media-')), masterKey: randomBytes(32).toString('hex') };
    a = await startRepoUnderTest({ tenant: TENANT, key, whoamiUrl: whoami.url, federation: federation(), db: dbA, ...shared });
    b = await startRepoUnderTest({ tenant: TENANT, key, whoamiUrl: whoami.url, federation: federation(), db: dbB, ...shared });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  test(`make one upstream request between them (${REAL_POSTGRES_URL ? 'separate pools on PostgreSQL' : 'shared embedded database'})`, async () => {
    const bytes = patternBytes(1024 * 1024, 34);
    const held = gate();
    remote.media.set('shared', { kind: 'multipart', bytes, contentType: 'image/webp', gate: held.opened });
    const path = `/_matrix/client/v1/media/download/${REMOTE}/shared`;
    const responses = Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b).get(path));
    await until(() => remote.requestsFor(`${DOWNLOADS}shared`).length === 1);
    await new Promise((resolve) => setTimeout(resolve, 300)); // the other instance is polling by now
    held.open();
    for (const response of await Promise.all(responses)) {
      expect(response.status).toBe(200);
      expect(response.body.equals(bytes)).toBe(true);
    }
    expect(remote.requestsFor(`${DOWNLOADS}shared`)).toHaveLength(1);
    const rows = await a.service.services.db.knex('media').where({ server_name: REMOTE, media_id: 'shared' });
    expect(rows).toHaveLength(1);
  });
});
