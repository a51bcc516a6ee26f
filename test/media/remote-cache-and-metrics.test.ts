// What the running service does around a remote fetch, seen from outside: the metrics count each fetch,
// join and cache lookup; a thumbnail and its original are cached apart; what was cached before the legacy
// freeze stays servable there; a held lock is heartbeated at its pace; closing cuts fetches in progress.
import { pbkdf2 } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import sharp from 'sharp';
import type { ThumbnailSpec } from '../../src/matrix/thumbnail-spec.js';
import type { RunningService } from '../../src/service.js';
import { Instances } from '../../src/db/instances.js';
import { generateSynapseKey } from '../helpers/keys.js';
import { patternBytes } from '../helpers/media-fixtures.js';
import { parsePrometheusText, total, type Sample } from '../helpers/prometheus-text.js';
import { describeWithPython } from '../helpers/python-available.js';
import { rawRequest } from '../helpers/raw-http.js';
import { startRemoteHomeserver, type RemoteHomeserver } from '../helpers/remote-homeserver.js';
import { startTestService, TEST_TOKEN } from '../helpers/service-under-test.js';
import { startStandInHomeserver, type StandInHomeserver } from '../helpers/stand-in-homeserver.js';

const TENANT = 'tenant.test';
const REMOTE = 'remote.test';
const download = (id: string) => `/_matrix/client/v1/media/download/${REMOTE}/${id}`;
const upstream = (kind: 'download' | 'thumbnail', id: string) => `/_matrix/federation/v1/media/${kind}/${id}`;

let remote: RemoteHomeserver;
let whoami: StandInHomeserver;
let service: RunningService;

beforeAll(async () => {
  const key = await generateSynapseKey('cache1');
  const signingKeyPath = join(mkdtempSync(join(tmpdir(), 'media-repo-remote-cache-')), 'tenant.signing.key');
  writeFileSync(signingKeyPath, key.file);
  remote = await startRemoteHomeserver({ serverName: REMOTE, trustedKeys: { [TENANT]: { [key.keyId]: key.publicKey } } });
  whoami = await startStandInHomeserver({ [TEST_TOKEN]: { userId: '@alice:tenant.test' } });
  service = await startTestService({
    metrics: { enabled: true, host: '127.0.0.1', port: 0 },
    homeservers: [{ name: TENANT, clientApi: whoami.url, signingKeyPath }],
    federation: { serverOverrides: { [REMOTE]: remote.url }, ipAllowlist: ['127.0.0.1/32'], failureCacheMs: 60_000, requestTimeoutMs: 60_000 },
    // A freeze still to come: everything cached now was cached before it.
    media: { legacyFreezeAt: new Date(Date.now() + 3_600_000).toISOString() },
  });
}, 90_000);

afterAll(async () => {
  await service?.close();
  await Promise.all([remote?.close(), whoami?.close()]);
});

const get = (path: string) => rawRequest(`${service.url}${path}`, { headers: { Host: TENANT, Authorization: `Bearer ${TEST_TOKEN}` }, allowIncomplete: true });

function gate(): { opened: Promise<void>; open(): void } {
  let open!: () => void;
  return { opened: new Promise<void>((resolve) => (open = resolve)), open };
}

async function until(condition: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function scrape(): Promise<Sample[]> {
  return parsePrometheusText(await (await fetch(service.metricsUrl!)).text());
}

const lockRows = (key: string) => service.services.db.knex('remote_fetches').where({ fetch_key: key });
const failureRows = (key: string) => service.services.db.knex('remote_fetch_failures').where({ fetch_key: key });
const open = (id: string, thumbnail?: ThumbnailSpec) => service.services.remoteMedia.open({ name: TENANT }, REMOTE, id, { thumbnail, timeoutMs: 5000 });

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describeWithPython('a remote fetch', () => {
  test('is counted by outcome; requests joining it and cache lookups are counted too', async () => {
    const held = gate();
    const bytes = patternBytes(3000, 5);
    remote.media.set('counted', { kind: 'multipart', bytes, gate: held.opened });
    remote.media.set('missing', { kind: 'error', status: 404, body: { errcode: 'M_NOT_FOUND', error: 'gone' } });
    const before = await scrape();
    const first = get(download('counted'));
    await until(() => remote.requestsFor(upstream('download', 'counted')).length === 1);
    // These two come while the fetch runs: they join it without looking in the cache.
    const joining = [get(download('counted')), get(download('counted'))];
    const joins = async () => total(await scrape(), 'media_repo_remote_fetch_joins_total') - total(before, 'media_repo_remote_fetch_joins_total');
    await until(async () => (await joins()) === 2);
    held.open();
    for (const res of await Promise.all([first, ...joining])) expect(res.body.equals(bytes)).toBe(true);
    await service.services.remoteMedia.settled();
    expect((await get(download('counted'))).body.equals(bytes)).toBe(true);
    expect((await get(download('missing'))).status).toBe(404);
    await service.services.remoteMedia.settled();

    const after = await scrape();
    const delta = (name: string, labels: Record<string, string>) => total(after, name, labels) - total(before, name, labels);
    expect(delta('media_repo_remote_fetches_total', { outcome: 'ok' })).toBe(1);
    expect(delta('media_repo_remote_fetches_total', { outcome: '404' })).toBe(1);
    expect(delta('media_repo_remote_fetch_joins_total', {})).toBe(2);
    expect(delta('media_repo_cache_lookups_total', { cache: 'remote_media', result: 'hit' })).toBe(1);
    expect(delta('media_repo_cache_lookups_total', { cache: 'remote_media', result: 'miss' })).toBe(2);
    expect(remote.requestsFor(upstream('download', 'counted'))).toHaveLength(1);
  });

  test('of a thumbnail is not answered by the cached original, and once cached is not asked of the origin again', async () => {
    const original = patternBytes(5000, 6);
    const png = await sharp({ create: { width: 24, height: 24, channels: 3, background: '#224466' } }).png().toBuffer();
    remote.media.set('both', { kind: 'multipart', bytes: original, thumbnail: { bytes: png, contentType: 'image/png' } });
    expect((await get(download('both'))).body.equals(original)).toBe(true);
    await service.services.remoteMedia.settled();
    const thumbnail = `/_matrix/client/v1/media/thumbnail/${REMOTE}/both?width=32&height=32&method=crop`;
    for (let attempt = 0; attempt < 2; attempt++) {
      const res = await get(thumbnail);
      expect([res.status, res.headers['content-type']]).toEqual([200, 'image/png']);
      expect(res.body.equals(png)).toBe(true);
      await service.services.remoteMedia.settled();
    }
    expect(remote.requestsFor(upstream('thumbnail', 'both'))).toHaveLength(1);
  });

  test('of an animated thumbnail is not joined by one for the still thumbnail of the same size', async () => {
    const held = gate();
    const png = await sharp({ create: { width: 24, height: 24, channels: 3, background: '#446622' } }).png().toBuffer();
    remote.media.set('moving', { kind: 'multipart', bytes: patternBytes(100), gate: held.opened, thumbnail: { bytes: png, contentType: 'image/png' } });
    const path = `/_matrix/client/v1/media/thumbnail/${REMOTE}/moving?width=32&height=32&method=scale`;
    const responses = [get(path), get(`${path}&animated=true`)];
    await until(() => remote.requestsFor(upstream('thumbnail', 'moving')).length === 2);
    held.open();
    for (const res of await Promise.all(responses)) expect(res.status).toBe(200);
    const asked = remote.requestsFor(upstream('thumbnail', 'moving')).map((r) => new URL(r.path, 'http://x').searchParams.get('animated'));
    expect(asked.sort()).toEqual(['true', null].sort());
  });

  test('cached before the legacy freeze is served on the unauthenticated endpoint', async () => {
    const bytes = patternBytes(700, 8);
    remote.media.set('early', { kind: 'multipart', bytes });
    expect((await get(download('early'))).status).toBe(200);
    await service.services.remoteMedia.settled();
    const legacy = await get(`/_matrix/media/v3/download/${REMOTE}/early`);
    expect(legacy.status).toBe(200);
    expect(legacy.body.equals(bytes)).toBe(true);
    expect(remote.requestsFor(upstream('download', 'early'))).toHaveLength(1);
  });

  test('holds its lock row with a heartbeat every 5 s, not more often', async () => {
    const held = gate();
    remote.media.set('held', { kind: 'multipart', bytes: patternBytes(100), gate: held.opened });
    const response = get(download('held'));
    await until(() => remote.requestsFor(upstream('download', 'held')).length === 1);
    const [row] = await lockRows(`download ${REMOTE} held`);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await lockRows(`download ${REMOTE} held`)).toEqual([row]);
    held.open();
    expect((await response).status).toBe(200);
  });

  test('opened by a client only after it was recorded, is read from storage; a failed one gives its own error', async () => {
    const png = await sharp({ create: { width: 24, height: 24, channels: 3, background: '#662244' } }).png().toBuffer();
    const bytes = patternBytes(3000, 11);
    remote.media.set('late', { kind: 'multipart', bytes, thumbnail: { bytes: png, contentType: 'image/png' } });
    remote.media.set('late-broken', { kind: 'truncated', bytes: patternBytes(100_000, 12) });
    // The flight's own answers, taken while it runs (as a request that joined it would), their bytes opened once it is done.
    const [media, thumbnail, broken] = await Promise.all([open('late'), open('late', { width: 32, height: 32, method: 'crop', animated: false }), open('late-broken')]);
    await service.services.remoteMedia.settled();
    expect((await readAll(await media.open())).equals(bytes)).toBe(true);
    expect((await readAll(await media.open({ start: 10, end: 19 }))).equals(bytes.subarray(10, 20))).toBe(true);
    expect((await readAll(await thumbnail.open())).equals(png)).toBe(true);
    await expect(broken.open()).rejects.toMatchObject({ status: 502, errcode: 'M_UNKNOWN', message: 'Could not fetch the remote content: the transfer was cut short' });
  });

  test.each([
    ['and keeps its lock', false],
    ['and lets go of its lock at once', true],
  ])('waiting on another instance that records a failure %s: its failure is answered, the origin not asked', async (_, release) => {
    const id = `failed-elsewhere-${release}`;
    remote.media.set(id, { kind: 'multipart', bytes: patternBytes(100) });
    const { knex } = service.services.db;
    const other = await Instances.register(service.services.db, () => undefined);
    const key = `download ${REMOTE} ${id}`;
    try {
      await knex('remote_fetches').insert({ fetch_key: key, owner: `${other.id}/fetch`, heartbeat_ts: Date.now() });
      const response = get(download(id));
      await new Promise((resolve) => setTimeout(resolve, 300)); // waiting on the lock by now
      await knex.transaction(async (trx) => {
        await trx('remote_fetch_failures').insert({ fetch_key: key, status: 404, errcode: 'M_NOT_FOUND', error: 'gone', expires_ts: Date.now() + 60_000 });
        if (release) await trx('remote_fetches').where({ fetch_key: key }).delete();
      });
      const res = await response;
      expect([res.status, res.json()]).toEqual([404, { errcode: 'M_NOT_FOUND', error: 'gone' }]);
      expect(remote.requestsFor(upstream('download', id))).toHaveLength(0);
    } finally {
      await knex('remote_fetches').where({ fetch_key: key }).delete();
      await other.close();
    }
  });

  // Last: these close the fetching side of the service (a request after it starts a fetch again).
  test('in progress when the service closes is cut, its client sees the body end short, and its lock is released', async () => {
    const bytes = patternBytes(200_000, 9);
    remote.media.set('stalled', { kind: 'stall', bytes });
    let received = 0;
    const response = rawRequest(`${service.url}${download('stalled')}`, {
      headers: { Host: TENANT, Authorization: `Bearer ${TEST_TOKEN}` }, allowIncomplete: true, onData: (chunk) => (received += chunk.length),
    });
    await until(() => received > 0);
    await service.services.remoteMedia.close();
    expect(await lockRows(`download ${REMOTE} stalled`)).toEqual([]);
    expect(await failureRows(`download ${REMOTE} stalled`)).toEqual([]); // a shutdown is no failure of the origin
    const res = await response;
    expect([res.status, res.complete]).toEqual([200, false]);
    expect(bytes.subarray(0, res.body.length).equals(res.body)).toBe(true);
  });

  test('closed while its spool file is being opened (the body has no reader yet): answered 502, nothing unhandled, no lock held', async () => {
    remote.media.set('opening', { kind: 'stall', bytes: patternBytes(50_000, 10) });
    // Every thread of libuv's pool busy for a while: the spool's file open waits behind them, and close() comes meanwhile.
    const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
    const busy = Array.from({ length: threads }, () => promisify(pbkdf2)('busy', 'pool', 1_000_000, 32, 'sha512'));
    const response = get(download('opening'));
    await until(() => remote.requestsFor(upstream('download', 'opening')).length === 1);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await service.services.remoteMedia.close();
    await Promise.all(busy);
    const res = await response;
    expect([res.status, res.json()]).toEqual([502, { errcode: 'M_UNKNOWN', error: 'Could not fetch the remote content: its server could not be reached' }]);
    expect(await lockRows(`download ${REMOTE} opening`)).toEqual([]);
    expect(await failureRows(`download ${REMOTE} opening`)).toEqual([]);
  });

  test('closed while waiting on another live instance\'s lock: answered 502 at once, the origin never asked', async () => {
    remote.media.set('elsewhere', { kind: 'multipart', bytes: patternBytes(100) });
    const other = await Instances.register(service.services.db, () => undefined);
    const key = `download ${REMOTE} elsewhere`;
    try {
      await service.services.db.knex('remote_fetches').insert({ fetch_key: key, owner: `${other.id}/fetch`, heartbeat_ts: Date.now() });
      const response = get(download('elsewhere'));
      await new Promise((resolve) => setTimeout(resolve, 300)); // waiting on the lock by now
      await service.services.remoteMedia.close();
      const res = await response;
      expect([res.status, res.json()]).toEqual([502, { errcode: 'M_UNKNOWN', error: 'Could not fetch the remote content: its server could not be reached' }]);
      expect(remote.requestsFor(upstream('download', 'elsewhere'))).toHaveLength(0);
      expect(await failureRows(key)).toEqual([]);
    } finally {
      await other.close();
    }
  });
});
