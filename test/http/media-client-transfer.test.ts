// The client media API moving bytes: uploads (matrix-js-sdk's and raw), downloads with their headers, size limits, shared blobs, HEAD and ranges.
import { request } from 'node:http';
import { parse as parseDisposition } from 'content-disposition';
import { alice, authed, authedUrl, MAX_UPLOAD, service, upload, useClientMediaService } from '../helpers/client-media-service.js';
import { TEST_DATASTORE } from '../helpers/service-under-test.js';
import { blobFiles, sha256Hex, snapshot, stagedFiles } from '../helpers/media-fixtures.js';
import { rawRequest } from '../helpers/raw-http.js';

const CSP = "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; object-src 'self';";

describe('client media API', () => {
  useClientMediaService();

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
    expect(await blobFiles(service)).toContain(sha256Hex(bytes));
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
      // On S3 the bytes wait in the first 5 MiB part: nothing reaches the bucket before it fills.
      const staging = TEST_DATASTORE === 's3' ? 0 : 1;
      for (let i = 0; i < 100 && (await stagedFiles(service)).length !== staging; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      if (staging === 0) await new Promise((resolve) => setTimeout(resolve, 200));
      expect(await stagedFiles(service)).toHaveLength(staging);
      req.destroy();
      for (let i = 0; i < 50 && (await stagedFiles(service)).length > 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
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
    expect((await blobFiles(service)).filter((name) => name === sha256Hex(bytes))).toHaveLength(1);
    expect(await stagedFiles(service)).toEqual([]);
    for (const mxc of uris) {
      const res = await fetch(authedUrl(mxc), { headers: authed() });
      expect(Buffer.from(await res.arrayBuffer())).toEqual(bytes);
    }
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
});
