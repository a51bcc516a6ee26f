// Where the proxy finds a blob, and the secure_link URL nginx checks (nginx itself in test/http and test/federation).
import { createHash } from 'node:crypto';
import { ProxyOffload } from '../../src/storage/proxy-offload.js';

const SHA = 'ab12' + 'c'.repeat(60);
const link = { prefix: '/signed/d', secret: 's3cr3t', expirySeconds: 300 };
const headers = { contentType: 'image/png', disposition: 'inline' as const, fileName: 'a.png' };

describe('ProxyOffload', () => {
  test('names the blob under the prefix from minBytes on, in the mode\'s header', () => {
    const accel = new ProxyOffload({ mode: 'x-accel-redirect', internalPrefix: '/internal/d', minBytes: 100 });
    expect(accel.target(SHA, 99)).toBeUndefined();
    expect(accel.target(SHA, 100)).toEqual({ header: 'X-Accel-Redirect', value: `/internal/d/ab/12/${SHA}` });
    const sendfile = new ProxyOffload({ mode: 'x-sendfile', internalPrefix: '/srv/media', minBytes: 0 });
    expect(sendfile.target(SHA, 0)).toEqual({ header: 'X-Sendfile', value: `/srv/media/ab/12/${SHA}` });
    expect(accel.signedPath(SHA, 1000, headers)).toBeUndefined();
  });

  test('signs expiry, path, type, disposition and name as nginx\'s secure_link_md5 expression reads them', () => {
    const offload = new ProxyOffload({ mode: 'x-accel-redirect', internalPrefix: '/i', minBytes: 10, secureLink: link });
    expect(offload.signedPath(SHA, 9, headers)).toBeUndefined();
    const path = offload.signedPath(SHA, 10, { ...headers, fileName: "it's (1) *new*!.png" }, 1_700_000_000_000)!;
    const url = new URL(path, 'http://x');
    expect(url.pathname).toBe(`/signed/d/ab/12/${SHA}`);
    expect(url.searchParams.get('expires')).toBe(String(1_700_000_000 + 300));
    // Only RFC 8187 attr-chars and %XX, so nginx can copy the raw value into filename*=.
    expect(path).toContain("&name=it%27s%20%281%29%20%2Anew%2A%21.png");
    const expected = createHash('md5').update(`1700000300:/signed/d/ab/12/${SHA}:image/png:inline:it%27s%20%281%29%20%2Anew%2A%21.png s3cr3t`).digest('base64url');
    expect(url.searchParams.get('md5')).toBe(expected);
    expect(offload.signedPath(SHA, 10, { ...headers, fileName: null })).toMatch(/&name=$/);
    expect(offload.signedPath(SHA, 10, { ...headers, contentType: 'text/plain; charset=utf-8' })).toBeUndefined();
  });
});
