// Async uploads (spec v1.7): POST /_matrix/media/v1/create, then PUT /_matrix/media/v3/upload/{serverName}/{mediaId};
// downloads of pending media wait for it.
import type { RunningService } from '../../src/service.js';
import { startTestService } from '../helpers/service-under-test.js';
import { blobFiles, sha256Hex, snapshot } from '../helpers/media-fixtures.js';
import { rawRequest, stalledBody, type RawResponse } from '../helpers/raw-http.js';
import { startStandInHomeserver, type StandInHomeserver } from '../helpers/stand-in-homeserver.js';

const MAX_PENDING = 3;
const MAX_TIMEOUT_MS = 1500;
const EXPIRY_MS = 3600_000;

describe('async uploads', () => {
  let hs: StandInHomeserver;
  let service: RunningService;
  const users = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'];

  beforeAll(async () => {
    hs = await startStandInHomeserver({
      ...Object.fromEntries(users.map((u) => [`tok-${u}`, { userId: `@${u}:a.example` }])),
      'tok-guest': { userId: '@guest:a.example', isGuest: true },
    });
    service = await startTestService({
      homeservers: [{ name: 'a.example', clientApi: hs.url, hostnames: ['127.0.0.1'], maxUploadBytes: 4096 }],
      media: { maxPendingUploadsPerUser: MAX_PENDING, maxTimeoutMs: MAX_TIMEOUT_MS, pendingUploadExpiryMs: EXPIRY_MS },
    });
  });
  afterAll(async () => {
    await service.close();
    await hs.close();
  });

  const auth = (user: string) => ({ authorization: `Bearer tok-${user}` });
  const create = (user: string) => rawRequest(`${service.url}/_matrix/media/v1/create`, {
    method: 'POST', headers: { ...auth(user), 'content-type': 'application/json' }, body: Buffer.from('{}'),
  });
  const createId = async (user: string) => {
    const res = await create(user);
    expect(res.status).toBe(200);
    return String(res.json().content_uri).replace('mxc://a.example/', '');
  };
  const put = (user: string, mediaId: string, body: Buffer | AsyncIterable<Buffer>, query = '') =>
    rawRequest(`${service.url}/_matrix/media/v3/upload/a.example/${mediaId}${query}`, {
      method: 'PUT', headers: { ...auth(user), 'content-type': 'image/png' }, body,
    });
  const download = (mediaId: string, query = '') =>
    rawRequest(`${service.url}/_matrix/client/v1/media/download/a.example/${mediaId}${query}`, { headers: auth('bob') });
  const errcode = (res: RawResponse) => res.json().errcode;

  test('create returns an mxc URI and its expiry; PUT fills it; the download serves it', async () => {
    const before = Date.now();
    const res = await create('alice');
    expect(res.status).toBe(200);
    const body = res.json();
    expect(body.content_uri).toMatch(/^mxc:\/\/a\.example\/[A-Za-z0-9_-]+$/);
    expect(body.unused_expires_at).toBeGreaterThanOrEqual(before + EXPIRY_MS);
    expect(body.unused_expires_at).toBeLessThanOrEqual(Date.now() + EXPIRY_MS);
    const mediaId = String(body.content_uri).split('/').pop()!;

    const uploaded = await put('alice', mediaId, Buffer.from('async bytes'), '?filename=late.png');
    expect(uploaded.status).toBe(200);
    expect(uploaded.json()).toEqual({});
    const got = await download(mediaId);
    expect(got.status).toBe(200);
    expect(got.body.toString()).toBe('async bytes');
    expect(got.headers['content-type']).toBe('image/png');
    expect(got.headers['content-disposition']).toBe('inline; filename="late.png"');
  });

  test('a second PUT is 409 M_CANNOT_OVERWRITE_MEDIA and leaves the first content', async () => {
    const mediaId = await createId('alice');
    expect((await put('alice', mediaId, Buffer.from('first'))).status).toBe(200);
    const before = await snapshot(service);
    const again = await put('alice', mediaId, Buffer.from('second'));
    expect(again.status).toBe(409);
    expect(again.json()).toEqual({ errcode: 'M_CANNOT_OVERWRITE_MEDIA', error: 'Media already uploaded' });
    expect((await download(mediaId)).body.toString()).toBe('first');
    expect(await snapshot(service)).toEqual(before);
  });

  test('another user\'s PUT is 403 M_FORBIDDEN; a guest cannot create', async () => {
    const mediaId = await createId('alice');
    const before = await snapshot(service);
    const res = await put('bob', mediaId, Buffer.from('not yours'));
    expect(res.status).toBe(403);
    expect(res.json()).toEqual({ errcode: 'M_FORBIDDEN', error: 'This media ID was created by another user' });
    const guest = await create('guest');
    expect(guest.status).toBe(403);
    expect(await snapshot(service)).toEqual(before);
  });

  test('PUT to an ID never created, or expired, is 404 M_NOT_FOUND', async () => {
    const unknown = await put('alice', 'neverCreated123', Buffer.from('x'));
    expect(unknown.status).toBe(404);
    expect(unknown.json()).toEqual({ errcode: 'M_NOT_FOUND', error: 'Unknown media ID' });

    const mediaId = await createId('alice');
    await service.services.db.knex('media').where({ media_id: mediaId }).update({ expires_ts: Date.now() - 1 });
    const before = await snapshot(service);
    const expired = await put('alice', mediaId, Buffer.from('too late'));
    expect(expired.status).toBe(404);
    expect(expired.json()).toEqual({ errcode: 'M_NOT_FOUND', error: 'Unknown media ID' });
    expect(await snapshot(service)).toEqual(before);
    expect((await download(mediaId)).status).toBe(404);
  });

  test('an oversize PUT is 413 and the ID stays pending and usable', async () => {
    const mediaId = await createId('carol');
    const before = await snapshot(service);
    const res = await put('carol', mediaId, Buffer.alloc(4097));
    expect(res.status).toBe(413);
    expect(errcode(res)).toBe('M_TOO_LARGE');
    expect(await snapshot(service)).toEqual(before);
    expect((await put('carol', mediaId, Buffer.alloc(4096, 1))).status).toBe(200);
  });

  test('a PUT refused by what precedes its body (a declared length over the limit, an ID already filled) is answered before the body', async () => {
    const putStalled = async (mediaId: string, length: number) => {
      const answered = { done: false };
      const res = await rawRequest(`${service.url}/_matrix/media/v3/upload/a.example/${mediaId}`, {
        method: 'PUT', headers: { ...auth('carol'), 'content-type': 'image/png', 'content-length': String(length) }, body: stalledBody(Buffer.alloc(10, 1), answered), // ten bytes of the declared length
      });
      answered.done = true;
      return res;
    };
    const pending = await createId('carol');
    const tooLarge = await putStalled(pending, 4097);
    expect([tooLarge.status, errcode(tooLarge)]).toEqual([413, 'M_TOO_LARGE']);
    const filled = await createId('carol');
    expect((await put('carol', filled, Buffer.from('first'))).status).toBe(200);
    const again = await putStalled(filled, 100);
    expect([again.status, errcode(again)]).toEqual([409, 'M_CANNOT_OVERWRITE_MEDIA']);
  });

  test('a download of pending media waits for the PUT', async () => {
    const mediaId = await createId('alice');
    const waiting = download(mediaId, '?timeout_ms=5000');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await put('alice', mediaId, Buffer.from('worth the wait'))).status).toBe(200);
    const res = await waiting;
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('worth the wait');
  });

  test('a download of pending media gives up with 504 M_NOT_YET_UPLOADED, timeout_ms capped by the config', async () => {
    const mediaId = await createId('alice');
    let started = Date.now();
    const short = await download(mediaId, '?timeout_ms=200');
    expect(short.status).toBe(504);
    expect(short.json()).toEqual({ errcode: 'M_NOT_YET_UPLOADED', error: 'Content has not yet been uploaded' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);

    started = Date.now();
    const capped = await download(mediaId, '?timeout_ms=600000');
    expect(capped.status).toBe(504);
    const waited = Date.now() - started;
    // Uncapped, the wait (600 s) would outlast the test's own timeout.
    expect(waited).toBeGreaterThanOrEqual(MAX_TIMEOUT_MS - 10);

    const thumbnail = await rawRequest(`${service.url}/_matrix/client/v1/media/thumbnail/a.example/${mediaId}?width=32&height=32&timeout_ms=0`, {
      headers: auth('bob'),
    });
    expect(thumbnail.status).toBe(504);
    expect(errcode(thumbnail)).toBe('M_NOT_YET_UPLOADED');
  });

  test('pending uploads per user are limited: 429 M_LIMIT_EXCEEDED with Retry-After, also under concurrency', async () => {
    const results = await Promise.all(Array.from({ length: 8 }, () => create('dave')));
    expect(results.filter((r) => r.status === 200)).toHaveLength(MAX_PENDING);
    const refused = results.filter((r) => r.status === 429);
    expect(refused).toHaveLength(8 - MAX_PENDING);
    for (const res of refused) {
      expect(res.json()).toMatchObject({ errcode: 'M_LIMIT_EXCEEDED', error: 'Too many pending uploads: finish or wait for one to expire' });
      const retryAfter = Number(res.headers['retry-after']);
      expect(retryAfter).toBeGreaterThan(EXPIRY_MS / 1000 - 60);
      expect(retryAfter).toBeLessThanOrEqual(EXPIRY_MS / 1000);
    }
    // Other users are not affected; finishing one frees a slot.
    expect((await create('erin')).status).toBe(200);
    const mediaId = String(results.find((r) => r.status === 200)!.json().content_uri).split('/').pop()!;
    expect((await put('dave', mediaId, Buffer.from('done'))).status).toBe(200);
    expect((await create('dave')).status).toBe(200);
  });

  test('expired pending IDs no longer count against the limit', async () => {
    const ids = await Promise.all(Array.from({ length: MAX_PENDING }, () => createId('frank')));
    expect((await create('frank')).status).toBe(429);
    await service.services.db.knex('media').whereIn('media_id', ids).update({ expires_ts: Date.now() - 1 });
    expect((await create('frank')).status).toBe(200);
  });

  test('two racing PUTs: one wins, the other gets 409 and its bytes are not kept', async () => {
    const mediaId = await createId('alice');
    const first = Buffer.alloc(3000, 1);
    const second = Buffer.alloc(3000, 2);
    // Both bodies are held open half-way, so both uploads are in flight when either finishes.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    async function* held(bytes: Buffer) {
      yield bytes.subarray(0, 1000);
      await gate;
      yield bytes.subarray(1000);
    }
    const racing = [put('alice', mediaId, held(first)), put('alice', mediaId, held(second))];
    await new Promise((resolve) => setTimeout(resolve, 200));
    release();
    const results = await Promise.all(racing);
    expect(results.map((r) => r.status).sort()).toEqual([200, 409]);
    expect(errcode(results.find((r) => r.status === 409)!)).toBe('M_CANNOT_OVERWRITE_MEDIA');
    const served = (await download(mediaId)).body;
    const loser = served.equals(first) ? second : first;
    expect(served.equals(first) || served.equals(second)).toBe(true);
    const blobs = await blobFiles(service);
    expect(blobs).toContain(sha256Hex(served));
    expect(blobs).not.toContain(sha256Hex(loser));
  });
});
