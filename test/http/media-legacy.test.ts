// The deprecated /_matrix/media/{v3,r0,v1} endpoints and the freeze (spec v1.11/v1.12; Client-Server API,
// "Content repository": https://spec.matrix.org/v1.16/client-server-api/#content-repository).
import { Readable } from 'node:stream';
import { getHttpUriForMxc } from 'matrix-js-sdk/lib/content-repo.js';
import sharp from 'sharp';
import type { RunningService } from '../../src/service.js';
import { startTestService } from '../helpers/service-under-test.js';
import { rawRequest } from '../helpers/raw-http.js';
import { startStandInHomeserver, type StandInHomeserver } from '../helpers/stand-in-homeserver.js';

const FREEZE = '2024-09-04T00:00:00Z';
const BEFORE_FREEZE = Date.parse('2024-06-01T00:00:00Z');

describe('legacy media endpoints', () => {
  let hs: StandInHomeserver;
  let frozen: RunningService;
  let unfrozen: RunningService;

  beforeAll(async () => {
    hs = await startStandInHomeserver({ 'tok-alice': { userId: '@alice:a.example' } });
    const homeservers = [{ name: 'a.example', clientApi: hs.url, hostnames: ['127.0.0.1'], maxUploadBytes: 1000 }];
    frozen = await startTestService({ homeservers, media: { legacyFreezeAt: FREEZE } });
    unfrozen = await startTestService({ homeservers, media: { legacyFreezeAt: null } });
  });
  afterAll(async () => {
    await frozen.close();
    await unfrozen.close();
    await hs.close();
  });

  const auth = { authorization: 'Bearer tok-alice' };
  async function upload(service: RunningService, bytes: Buffer): Promise<string> {
    const res = await rawRequest(`${service.url}/_matrix/media/v3/upload?filename=old.txt`, {
      method: 'POST', headers: { ...auth, 'content-type': 'text/plain' }, body: bytes,
    });
    expect(res.status).toBe(200);
    return String(res.json().content_uri);
  }
  /** The unauthenticated URL a pre-v1.11 client builds. */
  const legacyUrl = (service: RunningService, mxc: string, width?: number, height?: number) =>
    getHttpUriForMxc(service.url, mxc, width, height, width ? 'crop' : undefined, false, false, false);
  const backdate = (service: RunningService, mxc: string) =>
    service.services.db.knex('media').where({ media_id: mxc.split('/').pop() }).update({ created_ts: BEFORE_FREEZE, stored_ts: BEFORE_FREEZE });

  test('media stored after the freeze is 404 M_NOT_FOUND without a token, and still served with one', async () => {
    const mxc = await upload(frozen, Buffer.from('new media'));
    const url = legacyUrl(frozen, mxc);
    expect(url).toContain('/_matrix/media/v3/download/a.example/');
    const res = await rawRequest(url);
    expect(res.status).toBe(404);
    expect(res.json().errcode).toBe('M_NOT_FOUND');
    const authed = await rawRequest(getHttpUriForMxc(frozen.url, mxc, undefined, undefined, undefined, false, true, true), { headers: auth });
    expect(authed.status).toBe(200);
  });

  test('media stored before the freeze is served without a token, publicly cacheable, on v3, r0 and v1', async () => {
    const mxc = await upload(frozen, Buffer.from('old media'));
    await backdate(frozen, mxc);
    for (const version of ['v3', 'r0', 'v1']) {
      const res = await rawRequest(legacyUrl(frozen, mxc).replace('/media/v3/', `/media/${version}/`));
      expect(res.status).toBe(200);
      expect(res.body.toString()).toBe('old media');
      expect(res.headers['cache-control']).toMatch(/^public,/);
      expect(res.headers['content-disposition']).toBe('inline; filename="old.txt"');
      expect(res.headers['content-security-policy']).toMatch(/^sandbox;/);
    }
    const named = await rawRequest(`${legacyUrl(frozen, mxc).split('?')[0]}/new.txt`);
    expect(named.headers['content-disposition']).toBe('inline; filename="new.txt"');
  });

  test('legacy thumbnails follow the freeze of their media', async () => {
    const image = await sharp({ create: { width: 100, height: 100, channels: 3, background: '#808080' } }).png().toBuffer();
    const uploadImage = async () => String((await rawRequest(`${frozen.url}/_matrix/media/v3/upload`, {
      method: 'POST', headers: { ...auth, 'content-type': 'image/png' }, body: image,
    })).json().content_uri);
    const fresh = await uploadImage();
    expect((await rawRequest(legacyUrl(frozen, fresh, 32, 32))).status).toBe(404);
    // Stored before the freeze: backdated before anything reads it (a stored row never changes, so it is cached).
    const old = await uploadImage();
    await backdate(frozen, old);
    const thumb = await rawRequest(legacyUrl(frozen, old, 32, 32));
    expect(thumb.status).toBe(200);
    expect(thumb.headers['content-type']).toBe('image/png');
  });

  test('with legacyFreezeAt null everything is served on the legacy endpoints', async () => {
    const mxc = await upload(unfrozen, Buffer.from('never frozen'));
    const res = await rawRequest(legacyUrl(unfrozen, mxc));
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('never frozen');
  });

  test('remote media is not fetched for legacy requests: not cached before the freeze means 404', async () => {
    const context = frozen.services as { remoteMedia?: unknown };
    const saved = context.remoteMedia;
    let fetched = 0;
    context.remoteMedia = { open: async () => { fetched++; throw new Error('must not be called'); } };
    try {
      for (const query of ['', '?allow_remote=false']) {
        const res = await rawRequest(`${frozen.url}/_matrix/media/v3/download/remote.example/someMedia${query}`);
        expect(res.status).toBe(404);
        expect(res.json().errcode).toBe('M_NOT_FOUND');
      }
      expect(fetched).toBe(0);
    } finally {
      context.remoteMedia = saved;
    }
  });

  test('remote media cached before the freeze is served from the cache; re-cached after it, it is frozen', async () => {
    await frozen.services.db.knex('media').insert({
      server_name: 'remote.example', media_id: 'cachedEarly', is_remote: true, content_type: 'text/plain',
      datastore_id: 'default', sha256: 'a'.repeat(64), size: 6, created_ts: BEFORE_FREEZE, stored_ts: BEFORE_FREEZE,
    });
    const context = frozen.services as { remoteMedia?: unknown };
    const saved = context.remoteMedia;
    let storedTs = BEFORE_FREEZE;
    context.remoteMedia = {
      open: async () => ({
        contentType: 'text/plain', uploadName: null, size: 6, sha256: 'a'.repeat(64), storedTs,
        open: async () => Readable.from([Buffer.from('cached')]),
      }),
    };
    try {
      const res = await rawRequest(`${frozen.url}/_matrix/media/v3/download/remote.example/cachedEarly`);
      expect(res.status).toBe(200);
      expect(res.body.toString()).toBe('cached');
      storedTs = Date.now();
      expect((await rawRequest(`${frozen.url}/_matrix/media/v3/download/remote.example/cachedEarly`)).status).toBe(404);
    } finally {
      context.remoteMedia = saved;
    }
  });

  test('legacy config and preview_url need a token', async () => {
    const anonymous = await rawRequest(`${frozen.url}/_matrix/media/v3/config`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.json().errcode).toBe('M_MISSING_TOKEN');
    const config = await rawRequest(`${frozen.url}/_matrix/media/v3/config`, { headers: auth });
    expect(config.json()).toEqual({ 'm.upload.size': 1000 });
    expect((await rawRequest(`${frozen.url}/_matrix/media/r0/preview_url?url=https%3A%2F%2Fexample.org`)).status).toBe(401);
    const preview = await rawRequest(`${frozen.url}/_matrix/media/v3/preview_url?url=https%3A%2F%2Fexample.org`, { headers: auth });
    expect(preview.status).toBe(404);
    expect(preview.json().errcode).toBe('M_UNRECOGNIZED');
  });

  test('bad IDs are 400 and unknown ones 404 on the legacy endpoints too', async () => {
    const bad = await rawRequest(`${unfrozen.url}/_matrix/media/v3/download/a.example/bad.id`);
    expect(bad.status).toBe(400);
    expect(bad.json().errcode).toBe('M_INVALID_PARAM');
    const unknown = await rawRequest(`${unfrozen.url}/_matrix/media/v3/download/a.example/unknownId`);
    expect(unknown.status).toBe(404);
    expect(unknown.json().errcode).toBe('M_NOT_FOUND');
  });
});
