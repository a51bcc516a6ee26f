// End to end: a real client (matrix-js-sdk) uploads and downloads through the running service, its
// access tokens checked by a loopback stand-in homeserver; every refusal is a Matrix error that changes nothing.
import { request } from 'node:http';
import { Readable } from 'node:stream';
import { parse as parseDisposition } from 'content-disposition';
import { createClient, type MatrixClient } from 'matrix-js-sdk';
import { getHttpUriForMxc } from 'matrix-js-sdk/lib/content-repo.js';
import { logger as sdkLogger } from 'matrix-js-sdk/lib/logger.js';
import type { ServableMedia } from '../../src/media/servable.js';
import type { RunningService } from '../../src/service.js';
import { startTestService } from '../helpers/service-under-test.js';
import { blobFiles, sha256Hex, snapshot, stagedFiles, storageRoot } from '../helpers/media-fixtures.js';
import { rawRequest } from '../helpers/raw-http.js';
import { startStandInHomeserver, type StandInHomeserver } from '../helpers/stand-in-homeserver.js';

const MAX_UPLOAD = 64 * 1024;
const CSP = "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; object-src 'self';";

describe('client media API', () => {
  let hsA: StandInHomeserver;
  let hsB: StandInHomeserver;
  let service: RunningService;
  let alice: MatrixClient;

  beforeAll(async () => {
    sdkLogger.setLevel('warn');
    hsA = await startStandInHomeserver({
      'tok-alice': { userId: '@alice:a.example' },
      'tok-guest': { userId: '@guest:a.example', isGuest: true },
      'tok-soft': { status: 401, body: { errcode: 'M_UNKNOWN_TOKEN', error: 'Soft logged out', soft_logout: true } },
      'tok-broken': { status: 500, body: { errcode: 'M_UNKNOWN', error: 'oops' } },
    });
    hsB = await startStandInHomeserver({ 'tok-carol': { userId: '@carol:b.example' } });
    service = await startTestService({
      homeservers: [
        // Requests to http://127.0.0.1:<port> carry Host 127.0.0.1, which names a.example.
        { name: 'a.example', clientApi: hsA.url, hostnames: ['127.0.0.1'], maxUploadBytes: MAX_UPLOAD },
        { name: 'b.example', clientApi: hsB.url },
      ],
      media: { legacyFreezeAt: null },
    });
    alice = createClient({ baseUrl: service.url, accessToken: 'tok-alice', userId: '@alice:a.example', useAuthorizationHeader: true });
  });
  afterAll(async () => {
    alice.stopClient();
    await service.close();
    await hsA.close();
    await hsB.close();
  });

  const authed = (token = 'tok-alice') => ({ authorization: `Bearer ${token}` });
  const authedUrl = (mxc: string) => getHttpUriForMxc(service.url, mxc, undefined, undefined, undefined, false, true, true);
  const upload = async (body: Buffer, query = '', headers: Record<string, string> = { 'content-type': 'application/octet-stream' }) => {
    const res = await rawRequest(`${service.url}/_matrix/media/v3/upload${query}`, { method: 'POST', headers: { ...authed(), ...headers }, body });
    expect(res.status).toBe(200);
    return String(res.json().content_uri);
  };

  test('matrix-js-sdk uploads, and its authenticated URL downloads the same bytes with the spec headers', async () => {
    const bytes = Buffer.from('Hello from matrix-js-sdk, uploaded through fetch on Node 20.\n');
    const { content_uri } = await alice.uploadContent(bytes, { name: 'greeting.txt', type: 'text/plain' });
    expect(content_uri).toMatch(/^mxc:\/\/a\.example\/[A-Za-z0-9_-]+$/);

    const url = authedUrl(content_uri);
    expect(url).toContain('/_matrix/client/v1/media/download/a.example/');
    const res = await fetch(url, { headers: authed() });
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer())).toEqual(bytes);
    expect(res.headers.get('content-type')).toBe('text/plain');
    expect(res.headers.get('content-length')).toBe(String(bytes.length));
    expect(parseDisposition(res.headers.get('content-disposition')!)).toEqual({ type: 'inline', parameters: { filename: 'greeting.txt' } });
    expect(res.headers.get('content-security-policy')).toBe(CSP);
    expect(res.headers.get('cross-origin-resource-policy')).toBe('cross-origin');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('cache-control')).toMatch(/^private,/);
    expect(res.headers.get('etag')).toBe(`"${sha256Hex(bytes)}"`);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(blobFiles(storageRoot(service))).toContain(sha256Hex(bytes));
  });

  test('the file name in the path replaces the uploaded one; a type off the allow-list is an attachment', async () => {
    const mxc = await upload(Buffer.from('<script>alert(1)</script>'), '?filename=page.html', { 'content-type': 'text/html' });
    const plain = await fetch(authedUrl(mxc), { headers: authed() });
    expect(plain.headers.get('content-type')).toBe('text/html');
    expect(parseDisposition(plain.headers.get('content-disposition')!)).toEqual({ type: 'attachment', parameters: { filename: 'page.html' } });
    const renamed = await fetch(`${authedUrl(mxc).split('?')[0]}/other%20name.html`, { headers: authed() });
    expect(renamed.status).toBe(200);
    expect(parseDisposition(renamed.headers.get('content-disposition')!)).toEqual({ type: 'attachment', parameters: { filename: 'other name.html' } });
  });

  test.each([
    ['plain ASCII', 'report 2024.pdf', 'application/pdf', 'attachment'],
    ['quotes and backslashes', 'say "hi"\\there.png', 'image/png', 'inline'],
    ['non-ASCII', 'Größe_日本語 😀.jpg', 'image/jpeg', 'inline'],
    ['a type with parameters', 'notes.txt', 'text/plain; charset=utf-8', 'inline'],
  ])('Content-Disposition round-trips a %s file name', async (_what, name, type, disposition) => {
    const mxc = await upload(Buffer.from('x'), `?filename=${encodeURIComponent(name)}`, { 'content-type': type });
    const res = await fetch(authedUrl(mxc), { headers: authed() });
    const header = res.headers.get('content-disposition')!;
    expect(header).toMatch(/^[\x20-\x7e]+$/);
    expect(parseDisposition(header)).toEqual({ type: disposition, parameters: expect.objectContaining({ filename: name }) });
    expect(res.headers.get('content-type')).toBe(type);
  });

  test('no file name and no Content-Type: application/octet-stream, attachment without a name', async () => {
    const res = await rawRequest(`${service.url}/_matrix/media/v3/upload`, { method: 'POST', headers: authed(), body: Buffer.from([1, 2, 3]) });
    expect(res.status).toBe(200);
    const download = await fetch(authedUrl(String(res.json().content_uri)), { headers: authed() });
    expect(download.headers.get('content-type')).toBe('application/octet-stream');
    expect(download.headers.get('content-disposition')).toBe('attachment');
  });

  test('bad upload metadata is refused before anything is stored', async () => {
    const before = await snapshot(service);
    const badType = await rawRequest(`${service.url}/_matrix/media/v3/upload`, {
      method: 'POST', headers: { ...authed(), 'content-type': 'not a type' }, body: Buffer.from('x'),
    });
    expect(badType.status).toBe(400);
    expect(badType.json().errcode).toBe('M_INVALID_PARAM');
    const badName = await rawRequest(`${service.url}/_matrix/media/v3/upload?filename=a%0Ab`, { method: 'POST', headers: authed(), body: Buffer.from('x') });
    expect(badName.status).toBe(400);
    expect(badName.json().errcode).toBe('M_INVALID_PARAM');
    expect(await snapshot(service)).toEqual(before);
  });

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

  describe('oversize uploads', () => {
    test('a Content-Length over the limit is refused up front: 413, no row, no file', async () => {
      const before = await snapshot(service);
      const res = await rawRequest(`${service.url}/_matrix/media/v3/upload`, {
        method: 'POST', headers: { ...authed(), 'content-length': String(MAX_UPLOAD + 1) }, body: Buffer.alloc(MAX_UPLOAD + 1, 7),
      });
      expect(res.status).toBe(413);
      expect(res.json().errcode).toBe('M_TOO_LARGE');
      // The refused rest of the body is not read: the connection ends with the answer.
      expect(res.headers.connection).toBe('close');
      expect(await snapshot(service)).toEqual(before);
    });

    test('a chunked body without a length is cut off once it passes the limit: 413, no row, no file', async () => {
      const before = await snapshot(service);
      let sent = 0;
      async function* chunks() {
        for (let i = 0; i < 64; i++) {
          sent += 4096;
          yield Buffer.alloc(4096, i);
        }
      }
      const res = await rawRequest(`${service.url}/_matrix/media/v3/upload`, { method: 'POST', headers: authed(), body: chunks() });
      expect(res.status).toBe(413);
      expect(res.json().errcode).toBe('M_TOO_LARGE');
      expect(res.headers.connection).toBe('close');
      expect(sent).toBeGreaterThan(MAX_UPLOAD);
      expect(await snapshot(service)).toEqual(before);
    });

    test('a client that goes away mid-upload leaves no row and no file', async () => {
      const before = await snapshot(service);
      const req = request(`${service.url}/_matrix/media/v3/upload`, { method: 'POST', headers: authed(), agent: false });
      req.on('error', () => undefined);
      req.write(Buffer.alloc(8192, 1));
      for (let i = 0; i < 100 && stagedFiles(storageRoot(service)).length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(stagedFiles(storageRoot(service))).toHaveLength(1);
      req.destroy();
      for (let i = 0; i < 50 && stagedFiles(storageRoot(service)).length > 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(await snapshot(service)).toEqual(before);
    });

    test('exactly the limit is accepted', async () => {
      const mxc = await upload(Buffer.alloc(MAX_UPLOAD, 1));
      const res = await fetch(authedUrl(mxc), { headers: authed() });
      expect(Number(res.headers.get('content-length'))).toBe(MAX_UPLOAD);
    });
  });

  test('concurrent identical uploads get their own IDs and share one blob', async () => {
    const bytes = Buffer.from(`identical ${Date.now()}`);
    const uris = await Promise.all(Array.from({ length: 8 }, () => upload(bytes)));
    expect(new Set(uris).size).toBe(8);
    expect(blobFiles(storageRoot(service)).filter((name) => name === sha256Hex(bytes))).toHaveLength(1);
    expect(stagedFiles(storageRoot(service))).toEqual([]);
    for (const mxc of uris) {
      const res = await fetch(authedUrl(mxc), { headers: authed() });
      expect(Buffer.from(await res.arrayBuffer())).toEqual(bytes);
    }
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

  describe('HEAD, ranges and caching', () => {
    const bytes = Buffer.from('0123456789abcdefghij');
    let url: string;
    beforeAll(async () => {
      url = authedUrl(await upload(bytes, '?filename=digits.txt', { 'content-type': 'text/plain' }));
    });

    test('HEAD has the headers and no body', async () => {
      const res = await rawRequest(url, { method: 'HEAD', headers: authed() });
      expect(res.status).toBe(200);
      expect(res.headers['content-length']).toBe(String(bytes.length));
      expect(res.headers['accept-ranges']).toBe('bytes');
      expect(res.body).toHaveLength(0);
    });

    test.each([
      ['bytes=2-5', 2, 5],
      ['bytes=15-', 15, 19],
      ['bytes=-3', 17, 19],
      ['bytes=10-1000', 10, 19],
    ])('Range %s is 206 with those bytes', async (range, start, end) => {
      const res = await rawRequest(url, { headers: { ...authed(), range } });
      expect(res.status).toBe(206);
      expect(res.headers['content-range']).toBe(`bytes ${start}-${end}/${bytes.length}`);
      expect(res.body).toEqual(bytes.subarray(start, end + 1));
      expect(res.headers['content-length']).toBe(String(end - start + 1));
    });

    test('an unsatisfiable range is 416 with the size', async () => {
      const res = await rawRequest(url, { headers: { ...authed(), range: 'bytes=20-' } });
      expect(res.status).toBe(416);
      expect(res.headers['content-range']).toBe(`bytes */${bytes.length}`);
      expect(res.json().errcode).toBe('M_UNKNOWN');
    });

    test('several ranges, a malformed range or a stale If-Range get the whole body', async () => {
      const cases: Array<Record<string, string>> = [{ range: 'bytes=0-1,4-5' }, { range: 'bytes=5-2' }, { range: 'items=1-2' }, { range: 'bytes=1-2', 'if-range': '"stale"' }];
      for (const headers of cases) {
        const res = await rawRequest(url, { headers: { ...authed(), ...headers } });
        expect(res.status).toBe(200);
        expect(res.body).toEqual(bytes);
      }
    });

    test('If-None-Match with the ETag is 304', async () => {
      const res = await rawRequest(url, { headers: { ...authed(), 'if-none-match': `"${sha256Hex(bytes)}"` } });
      expect(res.status).toBe(304);
      expect(res.body).toHaveLength(0);
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
