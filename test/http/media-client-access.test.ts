// The client media API's gatekeeping and routing: access tokens, tenants by Host, remote server names, media ID checks and the endpoints' methods.
import { Readable } from 'node:stream';
import type { ServableMedia } from '../../src/media/servable.js';
import { authed, authedUrl, hsA, hsB, MAX_UPLOAD, service, upload, useClientMediaService } from '../helpers/client-media-service.js';
import { sha256Hex, snapshot } from '../helpers/media-fixtures.js';
import { rawRequest } from '../helpers/raw-http.js';

describe('client media API', () => {
  useClientMediaService();

  describe('access tokens', () => {
    test('missing, unknown and soft-logged-out tokens are refused and change nothing', async () => {
      const before = await snapshot(service);
      const missing = await rawRequest(`${service.url}/_matrix/media/v3/upload`, { method: 'POST', body: Buffer.from('x') });
      expect(missing.status).toBe(401);
      expect(missing.json()).toEqual({ errcode: 'M_MISSING_TOKEN', error: 'Missing access token' });
      const unknown = await rawRequest(`${service.url}/_matrix/media/v3/upload`, { method: 'POST', headers: authed('nope'), body: Buffer.from('x') });
      expect(unknown.status).toBe(401);
      expect(unknown.json().errcode).toBe('M_UNKNOWN_TOKEN');
      expect(unknown.json().soft_logout).toBeUndefined();
      const soft = await rawRequest(`${service.url}/_matrix/media/v3/upload`, { method: 'POST', headers: authed('tok-soft'), body: Buffer.from('x') });
      expect(soft.status).toBe(401);
      expect(soft.json()).toMatchObject({ errcode: 'M_UNKNOWN_TOKEN', soft_logout: true });
      const notBearer = await fetch(`${service.url}/_matrix/client/v1/media/config`, { headers: { authorization: 'Basic dG9rLWFsaWNl' } });
      expect(notBearer.status).toBe(401);
      expect((await notBearer.json()).errcode).toBe('M_MISSING_TOKEN');
      expect(await snapshot(service)).toEqual(before);
    });

    test('downloads need a token too', async () => {
      const mxc = await upload(Buffer.from('secret'));
      const res = await fetch(authedUrl(mxc));
      expect(res.status).toBe(401);
      expect((await res.json()).errcode).toBe('M_MISSING_TOKEN');
    });

    test('?access_token= is accepted while the config allows it', async () => {
      const res = await fetch(`${service.url}/_matrix/client/v1/media/config?access_token=tok-alice`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ 'm.upload.size': MAX_UPLOAD });
    });

    test('a failing homeserver is a 502 Matrix error, not a hang', async () => {
      const res = await fetch(`${service.url}/_matrix/client/v1/media/config`, { headers: authed('tok-broken') });
      expect(res.status).toBe(502);
      expect((await res.json()).errcode).toBe('M_UNKNOWN');
    });

    test('guests may download but not upload or read the config', async () => {
      const mxc = await upload(Buffer.from('for guests'));
      const download = await fetch(authedUrl(mxc), { headers: authed('tok-guest') });
      expect(download.status).toBe(200);
      const before = await snapshot(service);
      const up = await rawRequest(`${service.url}/_matrix/media/v3/upload`, { method: 'POST', headers: authed('tok-guest'), body: Buffer.from('x') });
      expect(up.status).toBe(403);
      expect(up.json().errcode).toBe('M_FORBIDDEN');
      const config = await fetch(`${service.url}/_matrix/client/v1/media/config`, { headers: authed('tok-guest') });
      expect(config.status).toBe(403);
      expect(await snapshot(service)).toEqual(before);
    });
  });

  describe('tenants', () => {
    test('a user of another hosted homeserver downloads with their own token, checked by their own homeserver', async () => {
      const bytes = Buffer.from('shared across hosted homeservers');
      const mxc = await upload(bytes);
      const callsBefore = hsB.calls.get('tok-carol') ?? 0;
      const path = new URL(authedUrl(mxc)).pathname;
      const res = await rawRequest(`${service.url}${path}`, { headers: { host: 'b.example', ...authed('tok-carol') } });
      expect(res.status).toBe(200);
      expect(res.body).toEqual(bytes);
      expect(hsB.calls.get('tok-carol')).toBe(callsBefore + 1);
      expect(hsA.calls.get('tok-carol')).toBeUndefined();
    });

    test('an upload through b.example is stored under b.example, with b.example\'s limit', async () => {
      const res = await rawRequest(`${service.url}/_matrix/media/v3/upload`, {
        method: 'POST', headers: { host: 'b.example', ...authed('tok-carol') }, body: Buffer.alloc(MAX_UPLOAD + 1),
      });
      expect(res.status).toBe(200);
      expect(res.json().content_uri).toMatch(/^mxc:\/\/b\.example\//);
    });

    test('a Host that names no hosted homeserver gets 404 M_NOT_FOUND and stores nothing', async () => {
      const before = await snapshot(service);
      const res = await rawRequest(`${service.url}/_matrix/media/v3/upload`, {
        method: 'POST', headers: { host: 'unknown.example', ...authed() }, body: Buffer.from('x'),
      });
      expect(res.status).toBe(404);
      expect(res.json().errcode).toBe('M_NOT_FOUND');
      expect(hsA.calls.get('tok-alice')).toBeGreaterThan(0);
      expect(await snapshot(service)).toEqual(before);
    });

    test('remote server names go to the remote media fetcher with the caller\'s homeserver', async () => {
      const context = service.services as { remoteMedia?: unknown };
      const saved = context.remoteMedia;
      const bytes = Buffer.from('remote bytes');
      const asked: unknown[] = [];
      context.remoteMedia = {
        open: async (tenant: { name: string }, serverName: string, mediaId: string, options: unknown): Promise<ServableMedia> => {
          asked.push([tenant.name, serverName, mediaId, options]);
          return {
            contentType: 'image/png', uploadName: 'remote.png', size: bytes.length, sha256: sha256Hex(bytes),
            open: async () => Readable.from([bytes]),
          };
        },
      };
      try {
        const res = await rawRequest(`${service.url}/_matrix/client/v1/media/download/remote.example/abcDEF?timeout_ms=1234`, {
          headers: { host: 'b.example', ...authed('tok-carol') },
        });
        expect(res.status).toBe(200);
        expect(res.body).toEqual(bytes);
        expect(res.headers['content-disposition']).toBe('inline; filename="remote.png"');
        expect(res.headers['content-length']).toBe(String(bytes.length));
        expect(asked).toEqual([['b.example', 'remote.example', 'abcDEF', { timeoutMs: 1234 }]]);
      } finally {
        context.remoteMedia = saved;
      }
    });

    test('remote media still streaming in is sent without length, digest or ranges', async () => {
      const context = service.services as { remoteMedia?: unknown };
      const saved = context.remoteMedia;
      const bytes = Buffer.from('arriving from the origin right now');
      context.remoteMedia = {
        open: async (): Promise<ServableMedia> => ({
          contentType: 'text/plain', uploadName: null, size: undefined, sha256: undefined, open: async () => Readable.from([bytes]),
        }),
      };
      try {
        const res = await rawRequest(`${service.url}/_matrix/client/v1/media/download/remote.example/streaming`, {
          headers: { ...authed(), range: 'bytes=0-3' },
        });
        expect(res.status).toBe(200);
        expect(res.body).toEqual(bytes);
        expect(res.headers['transfer-encoding']).toBe('chunked');
        expect(res.headers['content-length']).toBeUndefined();
        expect(res.headers.etag).toBeUndefined();
        expect(res.headers['accept-ranges']).toBeUndefined();
      } finally {
        context.remoteMedia = saved;
      }
    });
  });

  describe('media IDs and server names', () => {
    test.each([
      ['a media ID with a dot', 'a.example/abc.def'],
      ['an encoded traversal', 'a.example/..%2F..%2Fetc%2Fpasswd'],
      ['an encoded space', 'a.example/abc%20def'],
      ['a bad server name', 'bad_server!/abcdef'],
    ])('%s is 400 M_INVALID_PARAM, before any token check', async (_what, path) => {
      const calls = hsA.calls.get('tok-alice');
      const res = await fetch(`${service.url}/_matrix/client/v1/media/download/${path}`, { headers: authed() });
      expect(res.status).toBe(400);
      expect((await res.json()).errcode).toBe('M_INVALID_PARAM');
      expect(hsA.calls.get('tok-alice')).toBe(calls);
    });

    test('an unknown but valid media ID is 404 M_NOT_FOUND', async () => {
      const res = await fetch(`${service.url}/_matrix/client/v1/media/download/a.example/doesNotExist`, { headers: authed() });
      expect(res.status).toBe(404);
      expect((await res.json()).errcode).toBe('M_NOT_FOUND');
    });
  });

  describe('endpoints', () => {
    test('config reports the homeserver\'s upload limit', async () => {
      const res = await fetch(`${service.url}/_matrix/client/v1/media/config`, { headers: authed() });
      expect(await res.json()).toEqual({ 'm.upload.size': MAX_UPLOAD });
    });

    test('r0 and v1 upload paths are aliases', async () => {
      for (const version of ['r0', 'v1']) {
        const res = await rawRequest(`${service.url}/_matrix/media/${version}/upload`, { method: 'POST', headers: authed(), body: Buffer.from(version) });
        expect(res.status).toBe(200);
        expect(res.json().content_uri).toMatch(/^mxc:\/\/a\.example\//);
      }
    });

    test('preview_url answers honestly that previews are not supported, after checking the token', async () => {
      const anonymous = await fetch(`${service.url}/_matrix/client/v1/media/preview_url?url=https%3A%2F%2Fmatrix.org`);
      expect(anonymous.status).toBe(401);
      const res = await fetch(`${service.url}/_matrix/client/v1/media/preview_url?url=https%3A%2F%2Fmatrix.org`, { headers: authed() });
      expect(res.status).toBe(404);
      expect(await res.json()).toEqual({ errcode: 'M_UNRECOGNIZED', error: 'URL previews are not supported by this media repository' });
    });

    test('a known endpoint with the wrong method is 405 M_UNRECOGNIZED, an unknown one 404', async () => {
      const wrong = await fetch(`${service.url}/_matrix/media/v3/upload`, { headers: authed() });
      expect(wrong.status).toBe(405);
      expect(wrong.headers.get('allow')).toBe('POST');
      expect((await wrong.json()).errcode).toBe('M_UNRECOGNIZED');
      const del = await fetch(`${service.url}/_matrix/client/v1/media/download/a.example/abc`, { method: 'DELETE' });
      expect(del.status).toBe(405);
      expect(del.headers.get('allow')).toBe('GET, HEAD');
      const unknown = await fetch(`${service.url}/_matrix/client/v1/media/nothing`, { headers: authed() });
      expect(unknown.status).toBe(404);
      expect((await unknown.json()).errcode).toBe('M_UNRECOGNIZED');
    });

    test('CORS pre-flights are answered without running the endpoint', async () => {
      const calls = hsA.calls.get('tok-alice');
      const res = await fetch(`${service.url}/_matrix/client/v1/media/download/a.example/abc`, {
        method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'GET' },
      });
      expect(res.status).toBe(204);
      expect(res.headers.get('access-control-allow-origin')).toBe('*');
      expect(res.headers.get('access-control-allow-methods')).toBe('GET, POST, PUT, DELETE, OPTIONS');
      expect(res.headers.get('access-control-allow-headers')).toBe('X-Requested-With, Content-Type, Authorization');
      expect(hsA.calls.get('tok-alice')).toBe(calls);
    });
  });
});
