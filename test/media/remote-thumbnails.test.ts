// Remote thumbnails and downloads checked on the way in: a thumbnail is sniffed before any client byte and
// must be a JPEG, PNG, APNG, GIF or WebP whatever its header says; anything else is refused and nothing is
// cached. Remote downloads follow the local inline/attachment rule, and the remote's file name is kept.
import sharp from 'sharp';
import { startStandInHomeserver, type StandInHomeserver } from '../helpers/stand-in-homeserver.js';
import { generateSynapseKey } from '../helpers/keys.js';
import { patternBytes } from '../helpers/media-fixtures.js';
import { startRemoteHomeserver, type RemoteHomeserver } from '../helpers/remote-homeserver.js';
import { startRepoUnderTest, TEST_TOKEN, type RepoUnderTest } from '../helpers/service-under-test.js';

const TENANT = 'tenant.test';
const REMOTE = 'remote.test';
const thumbnailPath = (id: string) => `/_matrix/client/v1/media/thumbnail/${REMOTE}/${id}?width=64&height=64&method=crop`;
const HTML = Buffer.from('<!doctype html><html><body><script>alert(document.cookie)</script></body></html>');

let remote: RemoteHomeserver;
let whoami: StandInHomeserver;
let repo: RepoUnderTest;

beforeAll(async () => {
  const key = await generateSynapseKey('tenant1');
  remote = await startRemoteHomeserver({ serverName: REMOTE, trustedKeys: { [TENANT]: { [key.keyId]: key.publicKey } } });
  whoami = await startStandInHomeserver({ [TEST_TOKEN]: { userId: '@alice:tenant.test' } });
  repo = await startRepoUnderTest({
    tenant: TENANT, key, whoamiUrl: whoami.url,
    federation: { serverOverrides: { [REMOTE]: remote.url }, ipAllowlist: ['127.0.0.1/32'], connectTimeoutMs: 1000, requestTimeoutMs: 2000, failureCacheMs: 0 },
  });
});

afterAll(async () => {
  await repo.close();
  await Promise.all([remote.close(), whoami.close()]);
});

async function thumbnailRows(id: string) {
  await repo.service.services.remoteMedia.settled();
  return repo.service.services.db.knex('remote_thumbnails').where({ server_name: REMOTE, media_id: id });
}

describe('a remote thumbnail', () => {
  test.each([
    ['text/html with a script', HTML, 'text/html'],
    ['HTML claiming to be a PNG', HTML, 'image/png'],
    ['an SVG (a renderer, not an image type thumbnails may have)', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'), 'image/svg+xml'],
    ['random bytes claiming to be a JPEG', patternBytes(9000, 4), 'image/jpeg'],
  ])('that is %s is refused with 502 M_UNKNOWN and not cached', async (_, bytes, contentType) => {
    const id = `bad-${contentType.replace(/\W/g, '')}-${bytes.length}`;
    remote.media.set(id, { kind: 'multipart', bytes: patternBytes(10), thumbnail: { bytes, contentType } });
    const before = await repo.inspect();
    for (let attempt = 0; attempt < 2; attempt++) {
      const res = await repo.get(thumbnailPath(id));
      expect(res.status).toBe(502);
      expect(res.json()).toEqual({ errcode: 'M_UNKNOWN', error: 'The origin server answered the thumbnail with content that is not a JPEG, PNG, APNG, GIF or WebP image' });
      expect(res.headers.etag).toBeUndefined();
    }
    expect(await thumbnailRows(id)).toEqual([]);
    const after = await repo.inspect();
    expect({ ...after, spooled: after.spooled.length, staged: after.staged.length }).toEqual({ ...before, spooled: 0, staged: 0 });
    // Not cached: each request asked the origin again.
    expect(remote.requestsFor(`/_matrix/federation/v1/media/thumbnail/${id}`)).toHaveLength(2);
  });

  test('refused, is asked of the origin again by a request that comes while the failed fetch still cleans up', async () => {
    const id = 'bad-again';
    remote.media.set(id, { kind: 'multipart', bytes: patternBytes(10), thumbnail: { bytes: HTML, contentType: 'image/png' } });
    const { remoteMedia } = repo.service.services;
    const open = () => remoteMedia.open({ name: TENANT }, REMOTE, id, { thumbnail: { width: 64, height: 64, method: 'crop', animated: false }, timeoutMs: 5000 });
    // The second call starts microtasks after the first failed: that fetch is still releasing its lock row.
    await expect(open()).rejects.toMatchObject({ status: 502 });
    await expect(open()).rejects.toMatchObject({ status: 502 });
    await remoteMedia.settled();
    expect(remote.requestsFor(`/_matrix/federation/v1/media/thumbnail/${id}`)).toHaveLength(2);
  });

  test('is served with its sniffed type, inline, under the name the remote gave, also once cached', async () => {
    const gif = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#804020' } }).gif().toBuffer();
    remote.media.set('named', { kind: 'multipart', bytes: patternBytes(10), thumbnail: { bytes: gif, contentType: 'image/png', disposition: 'inline; filename="cat thumb.gif"' } });
    for (let attempt = 0; attempt < 2; attempt++) {
      const res = await repo.get(thumbnailPath('named'));
      expect(res.status).toBe(200);
      expect(res.body.equals(gif)).toBe(true);
      expect(res.headers['content-type']).toBe('image/gif');
      expect(res.headers['content-disposition']).toBe('inline; filename="cat thumb.gif"');
    }
    expect((await thumbnailRows('named')).map((r: { content_type: string; upload_name: string }) => [r.content_type, r.upload_name])).toEqual([['image/gif', 'cat thumb.gif']]);
    expect(remote.requestsFor('/_matrix/federation/v1/media/thumbnail/named')).toHaveLength(1);
  });

  test('without a name from the remote gets the spec example name', async () => {
    const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#000000' } }).png().toBuffer();
    remote.media.set('unnamed', { kind: 'multipart', bytes: patternBytes(10), thumbnail: { bytes: png, contentType: 'image/png' } });
    const res = await repo.get(thumbnailPath('unnamed'));
    expect(res.headers['content-disposition']).toBe('inline; filename="thumbnail.png"');
  });
});

describe('a remote download', () => {
  test.each([
    ['text/html', 'attachment; filename="page.html"'],
    ['image/png', 'inline; filename="page.html"'],
    ['application/x-shockwave-flash', 'attachment; filename="page.html"'],
  ])('of type %s gets the local inline/attachment rule: %s', async (contentType, disposition) => {
    const id = `download-${contentType.replace(/\W/g, '')}`;
    remote.media.set(id, { kind: 'multipart', bytes: HTML, contentType, disposition: 'inline; filename="page.html"' });
    for (let attempt = 0; attempt < 2; attempt++) {
      const res = await repo.get(`/_matrix/client/v1/media/download/${REMOTE}/${id}`);
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toBe(contentType);
      expect(res.headers['content-disposition']).toBe(disposition);
      await repo.service.services.remoteMedia.settled();
    }
  });
});
