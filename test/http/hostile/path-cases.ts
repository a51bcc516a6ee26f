// Hostile paths, media IDs, server names, query parameters, methods and upload bodies.
import { bearer, err, host, MAX_UPLOAD, ok, ROUTES, TENANT, type Context, type Header, type HostileCase } from './cases.js';

const INVALID = err(400, 'M_INVALID_PARAM');
const NOT_FOUND = err(404, 'M_NOT_FOUND');

const BAD_MEDIA_IDS = ['a%20b', '%2e%2e', 'a.b', 'x'.repeat(300), '%00', '%C3%A9', 'a%2Fb', 'a%3Bb', '%0d%0aX-Injected:%201', 'a+b', '~', '%25'];
const BAD_SERVER_NAMES = ['ex%20ample', 'exa%21mple', 'a.example:', 'a..b', '%5B::1', '1.2.3.0x4', 'a.example:99999', 'a.example:0', 'x'.repeat(300), '%00', 'ex%2Fample', 'a_b.example', '%5B::1%5D:x'];
const DOWNLOADS: [string, (server: string, id: string) => string, Header[]][] = [
  ['v1 download', (s, id) => `/_matrix/client/v1/media/download/${s}/${id}`, [bearer()]],
  ['v1 thumbnail', (s, id) => `/_matrix/client/v1/media/thumbnail/${s}/${id}?width=8&height=8`, [bearer()]],
  ['v3 download', (s, id) => `/_matrix/media/v3/download/${s}/${id}`, []],
  ['r0 thumbnail', (s, id) => `/_matrix/media/r0/thumbnail/${s}/${id}?width=8&height=8`, []],
];

export function mediaPathCases(ctx: Context): HostileCase[] {
  const cases: HostileCase[] = [];
  for (const [name, path, auth] of DOWNLOADS) {
    const get = (p: string): HostileCase['request'] => ({ path: p, headers: [host(), ...auth] });
    for (const id of BAD_MEDIA_IDS) cases.push({ name: `${name}, media ID ${id.slice(0, 20)}`, request: get(path(TENANT, id)), expected: INVALID });
    for (const server of BAD_SERVER_NAMES) cases.push({ name: `${name}, server name ${server.slice(0, 20)}`, request: get(path(server, ctx.mediaId)), expected: INVALID });
    cases.push({ name: `${name}, unknown local media`, request: get(path(TENANT, 'doesNotExist')), expected: NOT_FOUND });
    cases.push({ name: `${name}, a hosted server name with another's media ID`, request: get(path('b.example', ctx.mediaId)), expected: NOT_FOUND });
    cases.push({ name: `${name}, an undecodable escape`, request: get(path(TENANT, '%ZZ')), expected: err(400, 'M_UNKNOWN') });
    // Dot segments are not resolved: they are path segments no route has.
    cases.push({ name: `${name}, a dot segment`, request: get(path(TENANT, `${ctx.mediaId}/../${ctx.mediaId}`)), expected: err(404, 'M_UNRECOGNIZED') });
    cases.push({ name: `${name}, a trailing slash`, request: get(path(TENANT, ctx.mediaId).replace(/(\?|$)/, '/$1')), expected: ok() });
  }
  // Remote media never fetched fresh on the legacy endpoints with allow_remote=false.
  cases.push({ name: 'v3 download, a remote name with allow_remote=false', request: { path: `/_matrix/media/v3/download/remote.test/${ctx.mediaId}?allow_remote=false`, headers: [host()] }, expected: NOT_FOUND });
  cases.push({ name: 'v3 download, allow_remote=maybe', request: { path: `/_matrix/media/v3/download/remote.test/${ctx.mediaId}?allow_remote=maybe`, headers: [host()] }, expected: INVALID });
  // A remote server that does not resolve: a 502 that names nothing of our network.
  cases.push({ name: 'v1 download, a remote server that does not resolve', request: { path: '/_matrix/client/v1/media/download/nowhere.test/abc', headers: [host(), bearer()] }, expected: err(502, 'M_UNKNOWN') });
  cases.push({ name: 'federation download, invalid media ID (authentication first)', request: { path: '/_matrix/federation/v1/media/download/a.b', headers: [host()] }, expected: err(401, 'M_UNAUTHORIZED') });
  return cases;
}

const THUMBNAIL_QUERIES: [string, string, ReturnType<typeof err>][] = [
  ['no width', 'height=8', err(400, 'M_MISSING_PARAM')],
  ['no height', 'width=8', err(400, 'M_MISSING_PARAM')],
  ['width 0', 'width=0&height=8', INVALID],
  ['negative width', 'width=-1&height=8', INVALID],
  ['width abc', 'width=abc&height=8', INVALID],
  ['fractional width', 'width=1.5&height=8', INVALID],
  ['exponent width', 'width=1e3&height=8', INVALID],
  ['ten-digit width', 'width=1234567890&height=8', INVALID],
  ['empty width', 'width=&height=8', INVALID],
  ['width twice', 'width=8&width=8&height=8', INVALID],
  // The simple query parser keeps brackets in the name: no "width" at all.
  ['width as an array', 'width[]=8&height=8', err(400, 'M_MISSING_PARAM')],
  ['width as an object', 'width[a]=8&height=8', err(400, 'M_MISSING_PARAM')],
  ['method zoom', 'width=8&height=8&method=zoom', INVALID],
  ['method upper-case', 'width=8&height=8&method=SCALE', INVALID],
  ['animated yes', 'width=8&height=8&animated=yes', INVALID],
  ['timeout_ms -1', 'width=8&height=8&timeout_ms=-1', INVALID],
  ['timeout_ms abc', 'width=8&height=8&timeout_ms=abc', INVALID],
  ['timeout_ms of 16 digits', 'width=8&height=8&timeout_ms=1234567890123456', INVALID],
  ['an encoded ampersand in a value', 'width=8%26height%3D8', err(400, 'M_INVALID_PARAM')],
  ['crop, animated, large', 'width=5000&height=5000&method=crop&animated=true', ok()],
];

export function queryCases(ctx: Context): HostileCase[] {
  return DOWNLOADS.filter(([name]) => name.includes('thumbnail')).flatMap(([name, path, auth]) => THUMBNAIL_QUERIES.map(([q, query, expected]): HostileCase => ({
    name: `${name}, ${q}`,
    request: { path: `${path(TENANT, ctx.mediaId).replace(/\?.*$/, '')}?${query}`, headers: [host(), ...auth] },
    expected,
  }))).concat([
    { name: 'v1 download, timeout_ms abc', request: { path: `/_matrix/client/v1/media/download/${TENANT}/${ctx.mediaId}?timeout_ms=abc`, headers: [host(), bearer()] }, expected: INVALID },
    { name: 'v1 download, unknown parameters are ignored', request: { path: `/_matrix/client/v1/media/download/${TENANT}/${ctx.mediaId}?x=%ZZ&y[z]=1`, headers: [host(), bearer()] }, expected: ok() },
  ]);
}

export function methodCases(ctx: Context): HostileCase[] {
  const cases: HostileCase[] = [];
  for (const route of ROUTES) {
    for (const method of ['PUT', 'DELETE', 'PATCH', route.method === 'GET' ? 'POST' : 'GET']) {
      cases.push({ name: `${route.name}, ${method}`, request: { method, path: route.path(ctx), headers: [host(), ...route.auth, ['Content-Length', '0']] }, expected: err(405, 'M_UNRECOGNIZED') });
    }
    const preflight = route.family === 'federation' ? err(405, 'M_UNRECOGNIZED') : ok(204);
    cases.push({ name: `${route.name}, OPTIONS`, request: { method: 'OPTIONS', path: route.path(ctx), headers: [host()] }, expected: preflight });
  }
  return cases;
}

const upload = (name: string, headers: Header[], body: string | Buffer, expected: HostileCase['expected'], query = ''): HostileCase => ({
  name: `upload, ${name}`,
  request: { method: 'POST', path: `/_matrix/media/v3/upload${query}`, headers: [host(), bearer(), ...headers], body },
  expected,
});
const sized = (body: string | Buffer): Header => ['Content-Length', String(Buffer.byteLength(body))];

export function uploadCases(): HostileCase[] {
  const over = Buffer.alloc(MAX_UPLOAD + 1, 0x61);
  return [
    upload('no Content-Type', [sized('abc')], 'abc', ok()),
    upload('an empty body', [sized('')], '', ok()),
    upload('a Content-Type that is no media type', [['Content-Type', 'not a type'], sized('abc')], 'abc', INVALID),
    upload('a 300-byte Content-Type', [['Content-Type', `text/${'x'.repeat(300)}`], sized('abc')], 'abc', INVALID),
    upload('a Content-Type with parameters', [['Content-Type', 'text/plain; charset=utf-8'], sized('abc')], 'abc', ok()),
    upload('a file name with a NUL', [sized('abc')], 'abc', INVALID, '?filename=a%00b'),
    upload('a file name of 2000 characters', [sized('abc')], 'abc', INVALID, `?filename=${'n'.repeat(2000)}`),
    upload('two file names', [sized('abc')], 'abc', INVALID, '?filename=a&filename=b'),
    upload('a file name with path and quotes', [sized('abc')], 'abc', ok(), '?filename=..%2F..%2F%22x%22.txt'),
    upload('a declared length over the limit', [['Content-Length', String(MAX_UPLOAD + 1)]], over, err(413, 'M_TOO_LARGE')),
    upload('a chunked body over the limit', [['Transfer-Encoding', 'chunked']], `${over.length.toString(16)}\r\n${over.toString('latin1')}\r\n0\r\n\r\n`, err(413, 'M_TOO_LARGE')),
    upload('a chunked body within the limit', [['Transfer-Encoding', 'chunked']], '3\r\nabc\r\n0\r\n\r\n', ok()),
    upload('binary bytes', [['Content-Type', 'application/octet-stream'], sized(Buffer.from([0, 255, 13, 10]))], Buffer.from([0, 255, 13, 10]), ok()),
    { name: 'upload into a media ID never created', request: { method: 'PUT', path: `/_matrix/media/v3/upload/${TENANT}/neverCreated`, headers: [host(), bearer(), sized('abc')], body: 'abc' }, expected: NOT_FOUND },
    { name: 'upload into another hosted homeserver\'s media ID', request: { method: 'PUT', path: '/_matrix/media/v3/upload/b.example/neverCreated', headers: [host(), bearer(), sized('abc')], body: 'abc' }, expected: NOT_FOUND },
    { name: 'upload into an invalid media ID', request: { method: 'PUT', path: `/_matrix/media/v3/upload/${TENANT}/a.b`, headers: [host(), bearer(), sized('abc')], body: 'abc' }, expected: INVALID },
  ];
}
