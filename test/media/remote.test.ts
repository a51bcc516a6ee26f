// Remote media through the real client API: a user of the hosted homeserver asks for mxc://remote.test/...,
// the service fetches it from a loopback remote homeserver (which checks our signature with Synapse's
// signedjson) and serves it while caching it. Every failure gives the right Matrix error and leaves
// nothing behind: no row, no blob, no staged or spooled file.
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { startStandInHomeserver, type StandInHomeserver } from '../helpers/stand-in-homeserver.js';
import { generateSynapseKey, type SynapseKey } from '../helpers/keys.js';
import { patternBytes } from '../helpers/media-fixtures.js';
import { startRemoteHomeserver, type RemoteHomeserver } from '../helpers/remote-homeserver.js';
import { startRepoUnderTest, TEST_TOKEN, type RepoUnderTest } from '../helpers/service-under-test.js';
import { describeWithPython } from '../helpers/python-available.js';

const TENANT = 'tenant.test';
const REMOTE = 'remote.test';
const MiB = 1024 * 1024;

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const download = (id: string, query = '') => `/_matrix/client/v1/media/download/${REMOTE}/${id}${query}`;

let key: SynapseKey;
let remote: RemoteHomeserver;
let legacyRemote: RemoteHomeserver;
let cdn: RemoteHomeserver;
let whoami: StandInHomeserver;
let repo: RepoUnderTest;

const NOTHING = { media: 0, thumbnails: 0, blobs: [], staged: [], spooled: [] };

beforeAll(async () => {
  key = await generateSynapseKey('tenant1');
  const trustedKeys = { [TENANT]: { [key.keyId]: key.publicKey } };
  remote = await startRemoteHomeserver({ serverName: REMOTE, trustedKeys });
  legacyRemote = await startRemoteHomeserver({ serverName: 'synapse.test', trustedKeys, acceptScoped: false });
  cdn = await startRemoteHomeserver({ serverName: 'cdn.test', trustedKeys: {} });
  whoami = await startStandInHomeserver({ [TEST_TOKEN]: { userId: '@alice:tenant.test' } });
  repo = await startRepoUnderTest({
    tenant: TENANT,
    key,
    whoamiUrl: whoami.url,
    federation: {
      serverOverrides: { [REMOTE]: remote.url, 'synapse.test': legacyRemote.url },
      ipAllowlist: ['127.0.0.1/32'],
      remoteMaxBytes: MiB,
      connectTimeoutMs: 1000,
      requestTimeoutMs: 800,
      failureCacheMs: 0,
    },
  });
});

afterAll(async () => {
  await repo.close();
  await Promise.all([remote.close(), legacyRemote.close(), cdn.close(), whoami.close()]);
});

// Each test uses its own media IDs, so the cache state is checked per media, once the fetch is recorded.
async function cachedRow(id: string) {
  await repo.service.services.remoteMedia.settled();
  return repo.service.services.db.knex('media').where({ server_name: REMOTE, media_id: id }).first();
}

async function expectNothingCachedFor(id: string) {
  expect(await cachedRow(id)).toBeUndefined();
  const state = await repo.inspect();
  expect(state.staged).toEqual([]);
  expect(state.spooled).toEqual([]);
}

describeWithPython('a remote download', () => {
  test('is fetched signed, streamed to the client, then served from the cache', async () => {
    const bytes = patternBytes(300_000, 11);
    remote.media.set('cat', { kind: 'multipart', bytes, contentType: 'image/png', disposition: 'inline; filename="cat.png"', chunkSize: 16 * 1024 });
    const first = await repo.get(download('cat'));
    expect(first.status).toBe(200);
    expect(first.body.equals(bytes)).toBe(true);
    expect(first.headers['content-type']).toBe('image/png');
    expect(first.headers['content-disposition']).toBe('inline; filename="cat.png"');
    expect(remote.requestsFor('/_matrix/federation/v1/media/download/cat')[0]!.verdict).toMatchObject({ ok: true, origin: TENANT, scheme: 'X-MSC4100-Scoped' });

    const row = await cachedRow('cat');
    expect(row).toMatchObject({ is_remote: true, user_id: null, content_type: 'image/png', upload_name: 'cat.png', sha256: sha256(bytes), size: bytes.length });
    expect((await repo.inspect()).blobs.some((file) => file.endsWith(sha256(bytes)))).toBe(true);

    const second = await repo.get(download('cat'));
    expect(second.status).toBe(200);
    expect(second.body.equals(bytes)).toBe(true);
    expect(second.headers['content-length']).toBe(String(bytes.length));
    const withName = await repo.get(download('cat', '/other.png'));
    expect(withName.headers['content-disposition']).toBe('inline; filename="other.png"');
    expect(remote.requestsFor('/_matrix/federation/v1/media/download/cat')).toHaveLength(1);
  });

  test('without a Content-Type or file name from the remote: application/octet-stream, no file name', async () => {
    remote.files.set('/raw/bare', { body: Buffer.from('bare bytes') });
    remote.media.set('bare', { kind: 'location', location: '/raw/bare' });
    const response = await repo.get(download('bare'));
    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toBe('application/octet-stream');
    expect(response.headers['content-disposition']).toBe('attachment');
    expect(await cachedRow('bare')).toMatchObject({ content_type: 'application/octet-stream', upload_name: null });
  });

  test('through a Location part to another server', async () => {
    const bytes = patternBytes(20_000, 12);
    cdn.files.set('/media/loc', { headers: { 'Content-Type': 'video/mp4', 'Content-Disposition': 'attachment; filename="clip.mp4"' }, body: bytes });
    remote.media.set('loc', { kind: 'location', location: `${cdn.url}/media/loc` });
    const response = await repo.get(download('loc'));
    expect(response.body.equals(bytes)).toBe(true);
    expect(response.headers['content-disposition']).toBe('inline; filename="clip.mp4"');
    expect(await cachedRow('loc')).toMatchObject({ content_type: 'video/mp4', upload_name: 'clip.mp4', size: bytes.length });
  });

  test('from a legacy-only server, over /_matrix/media/v3', async () => {
    remote.media.set('old', { kind: 'legacy-only', bytes: Buffer.from('legacy bytes'), contentType: 'text/plain', disposition: 'attachment; filename="old.txt"' });
    const response = await repo.get(download('old'));
    expect(response.status).toBe(200);
    expect(response.body.toString()).toBe('legacy bytes');
    expect(await cachedRow('old')).toMatchObject({ upload_name: 'old.txt', size: 12 });
  });

  test('from a server that only knows X-Matrix (MSC4100 downgrade)', async () => {
    legacyRemote.media.set('syn', { kind: 'multipart', bytes: Buffer.from('synapse media'), contentType: 'text/plain' });
    const response = await repo.get(`/_matrix/client/v1/media/download/synapse.test/syn`);
    expect(response.body.toString()).toBe('synapse media');
    const tries = legacyRemote.requestsFor('/_matrix/federation/v1/media/download/syn');
    expect(tries.map((r) => r.authorization[0]!.split(' ')[0])).toEqual(['X-MSC4100-Scoped', 'X-Matrix']);
    expect(tries.map((r) => r.verdict?.ok)).toEqual([false, true]);
  });
});

describeWithPython('remote failures give a Matrix error and cache nothing', () => {
  test('404 M_NOT_FOUND', async () => {
    remote.media.set('missing', { kind: 'error', status: 404, body: { errcode: 'M_NOT_FOUND', error: 'nope' } });
    const response = await repo.get(download('missing'));
    expect(response.status).toBe(404);
    expect(response.json()).toMatchObject({ errcode: 'M_NOT_FOUND' });
    await expectNothingCachedFor('missing');
  });

  test('a remote that does not answer within timeout_ms: 504 M_NOT_YET_UPLOADED', async () => {
    remote.media.set('slow', { kind: 'slow', delayMs: 3000, bytes: Buffer.from('too late') });
    const started = Date.now();
    const response = await repo.get(download('slow', '?timeout_ms=300'));
    expect(Date.now() - started).toBeLessThan(2000);
    expect(response.status).toBe(504);
    expect(response.json()).toMatchObject({ errcode: 'M_NOT_YET_UPLOADED' });
    await new Promise((resolve) => setTimeout(resolve, 1200)); // the upstream times out (requestTimeoutMs) meanwhile
    await expectNothingCachedFor('slow');
  });

  test('a client that gave up at timeout_ms leaves the fetch running up to requestTimeoutMs: the next one gets it from the cache', async () => {
    remote.media.set('patient', { kind: 'slow', delayMs: 400, bytes: Buffer.from('worth the wait') });
    expect((await repo.get(download('patient', '?timeout_ms=100'))).status).toBe(504);
    await repo.service.services.remoteMedia.settled();
    const later = await repo.get(download('patient'));
    expect([later.status, later.body.toString()]).toEqual([200, 'worth the wait']);
    expect(remote.requestsFor('/_matrix/federation/v1/media/download/patient')).toHaveLength(1);
  });

  test('exactly remoteMaxBytes, declared: served whole', async () => {
    const bytes = patternBytes(MiB, 15);
    remote.media.set('exact', { kind: 'legacy-only', bytes });
    const response = await repo.get(download('exact'));
    expect([response.status, response.body.equals(bytes)]).toEqual([200, true]);
  });

  test('a remote slower than requestTimeoutMs: 504', async () => {
    remote.media.set('slower', { kind: 'slow', delayMs: 3000, bytes: Buffer.from('too late') });
    const response = await repo.get(download('slower', '?timeout_ms=2000'));
    expect(response.status).toBe(504);
    await expectNothingCachedFor('slower');
  });

  test.each([
    ['stalls', { kind: 'stall' as const, bytes: patternBytes(100_000, 13) }],
    ['is cut off', { kind: 'truncated' as const, bytes: patternBytes(100_000, 14) }],
  ])('a body that %s: the client connection is cut, nothing cached', async (_what, behaviour) => {
    const id = `broken-${behaviour.kind}`;
    remote.media.set(id, behaviour);
    const response = await repo.get(download(id));
    expect(response.status).toBe(200); // the bytes had started to flow
    expect(response.complete).toBe(false);
    expect(response.body.length).toBeLessThan(behaviour.bytes.length);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await expectNothingCachedFor(id);
  });

  test('oversized with a declared length: 502 M_TOO_LARGE before any byte', async () => {
    // The origin declares 2 MiB and sends no media byte: only the declared length can give M_TOO_LARGE.
    remote.media.set('huge', { kind: 'oversized', size: 2 * MiB, declareLength: true });
    const response = await repo.get(download('huge'));
    expect([response.status, response.json().errcode]).toEqual([502, 'M_TOO_LARGE']);
    await expectNothingCachedFor('huge');
  });

  test('oversized without a declared length: cut off at the limit, nothing cached', async () => {
    remote.media.set('huge-stream', { kind: 'oversized', size: 2 * MiB, declareLength: false });
    const response = await repo.get(download('huge-stream'));
    expect(response.complete && response.status === 200).toBe(false);
    expect(response.body.length).toBeLessThanOrEqual(MiB + 64 * 1024);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await expectNothingCachedFor('huge-stream');
  });

  test('a Location pointing into a private network: 502, no connection, nothing cached', async () => {
    remote.media.set('ssrf', { kind: 'location', location: 'http://10.0.0.1/internal' });
    const response = await repo.get(download('ssrf'));
    expect(response.status).toBe(502);
    expect(response.json()).toMatchObject({ errcode: 'M_UNKNOWN' });
    // The client learns the kind of failure, never where the Location pointed or why it was refused.
    expect(response.json().error).toBe('Could not fetch the remote content: its server answered with something unusable');
    await expectNothingCachedFor('ssrf');
  });

  test('an unreachable server: 502', async () => {
    const response = await repo.get('/_matrix/client/v1/media/download/unreachable.invalid/x');
    expect(response.status).toBe(502);
    expect(response.json()).toMatchObject({ errcode: 'M_UNKNOWN' });
  });
});

describeWithPython('remote thumbnails', () => {
  test('are fetched from the origin per size and cached', async () => {
    // A real JPEG: remote thumbnails are sniffed on the way in.
    const small = await sharp({ create: { width: 16, height: 16, channels: 3, background: '#204060' } }).jpeg().toBuffer();
    remote.media.set('photo', { kind: 'multipart', bytes: patternBytes(5000, 20), thumbnail: { bytes: small, contentType: 'image/jpeg' } });
    const path = `/_matrix/client/v1/media/thumbnail/${REMOTE}/photo?width=64&height=64&method=crop`;
    const first = await repo.get(path);
    expect(first.status).toBe(200);
    expect(first.body.equals(small)).toBe(true);
    expect(first.headers['content-type']).toBe('image/jpeg');
    const second = await repo.get(path);
    expect(second.body.equals(small)).toBe(true);
    await repo.get(`/_matrix/client/v1/media/thumbnail/${REMOTE}/photo?width=320&height=240&method=scale`);
    await repo.service.services.remoteMedia.settled();
    expect(remote.requestsFor('/_matrix/federation/v1/media/thumbnail/photo').map((r) => new URL(r.path, 'http://x').searchParams.get('width'))).toEqual(['64', '320']);
    const rows = await repo.service.services.db.knex('remote_thumbnails').where({ server_name: REMOTE, media_id: 'photo' }).orderBy('width');
    expect(rows.map((r: { width: number; method: string; sha256: string }) => [r.width, r.method, r.sha256])).toEqual([[64, 'crop', sha256(small)], [320, 'scale', sha256(small)]]);
    expect(await cachedRow('photo')).toBeUndefined(); // the original was never needed
  });
});

describeWithPython('a homeserver without a signing key', () => {
  test('fetches over the legacy endpoint only, with one loud warning', async () => {
    const keyless = await startRepoUnderTest({
      tenant: TENANT, whoamiUrl: whoami.url,
      federation: { serverOverrides: { [REMOTE]: remote.url }, ipAllowlist: ['127.0.0.1/32'], failureCacheMs: 0 },
    });
    try {
      remote.media.set('kl1', { kind: 'legacy-only', bytes: Buffer.from('one') });
      remote.media.set('kl2', { kind: 'legacy-only', bytes: Buffer.from('two') });
      expect((await keyless.get(download('kl1'))).body.toString()).toBe('one');
      expect((await keyless.get(download('kl2'))).body.toString()).toBe('two');
      expect(remote.requestsFor('/_matrix/federation/v1/media/download/kl')).toHaveLength(0);
      const warnings = keyless.logLines.filter((line) => line.includes('NO SIGNING KEY'));
      expect(warnings).toHaveLength(1);
      expect(JSON.parse(warnings[0]!)).toMatchObject({ level: 40, homeserver: TENANT });
    } finally {
      await keyless.close();
    }
  });
});

describeWithPython('after all of the above', () => {
  test('nothing partial was left anywhere', async () => {
    const state = await repo.inspect();
    expect(state.staged).toEqual([]);
    expect(state.spooled).toEqual([]);
    expect({ ...NOTHING, media: state.media, thumbnails: state.thumbnails }).toEqual({ ...NOTHING, media: 7, thumbnails: 2 });
  });
});
