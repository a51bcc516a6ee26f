// Hostile headers: Host, Authorization, X-Matrix, Content-Length/Transfer-Encoding conflicts, oversized.
import { requestBytes } from '../../helpers/raw-socket.js';
import { err, host, parserRefusal, ROUTES, routeRequest, TENANT, type Context, type Header, type HostileCase } from './cases.js';

const BAD_HOSTS = ['evil.com', 'a.example.', 'a.example:8448:1', '[::1]', 'localhost', 'c.example', '*.example', 'a.example/x', 'xa.example', 'a.example, a.example'];

export function hostCases(ctx: Context): HostileCase[] {
  const cases: HostileCase[] = [];
  for (const route of ROUTES) {
    const notFound = err(404, 'M_NOT_FOUND');
    for (const value of [...BAD_HOSTS, '']) {
      cases.push({ name: `${route.name}, Host ${JSON.stringify(value)}`, request: routeRequest(route, ctx, [host(value), ...route.auth]), expected: notFound });
    }
    cases.push({ name: `${route.name}, two Host headers`, request: routeRequest(route, ctx, [host(), host(), ...route.auth]), expected: notFound });
    cases.push({ name: `${route.name}, HTTP/1.0 without Host`, request: routeRequest(route, ctx, route.auth, { version: 'HTTP/1.0' }), expected: notFound });
    cases.push({ name: `${route.name}, HTTP/1.1 without Host`, request: routeRequest(route, ctx, route.auth), expected: notFound });
    cases.push({ name: `${route.name}, untrusted X-Forwarded-Host`, request: routeRequest(route, ctx, [host('evil.com'), ['X-Forwarded-Host', TENANT], ...route.auth]), expected: notFound });
    cases.push({ name: `${route.name}, upper-case Host with a port`, request: routeRequest(route, ctx, [host('A.EXAMPLE:443'), ...route.auth]), expected: route.success });
  }
  return cases;
}

const MISSING = err(401, 'M_MISSING_TOKEN');
const UNKNOWN = err(401, 'M_UNKNOWN_TOKEN');
const AUTHORIZATIONS: [string, string | undefined, typeof MISSING][] = [
  ['none', undefined, MISSING],
  ['"Bearer" alone', 'Bearer', MISSING],
  ['Basic', 'Basic dXNlcjpwYXNz', MISSING],
  ['two words after Bearer', 'Bearer tok-alice extra', MISSING],
  ['X-Matrix on a client route', 'X-Matrix origin="peer.test",key="ed25519:a",sig="c2ln"', MISSING],
  ['Bearer, no space', 'Bearertok-alice', MISSING],
  ['an unknown token', 'Bearer nobody-knows-this', UNKNOWN],
  ['a 6000-byte token', `Bearer ${'t'.repeat(6000)}`, UNKNOWN],
  ['a token with Latin-1 bytes', 'Bearer t\u00f6k', UNKNOWN],
  ['a token with a quote and a backslash', 'Bearer "tok\\alice"', UNKNOWN],
];
const TOKEN_ROUTES = ROUTES.filter((r) => r.family === 'client' && r.auth.some(([n]) => n === 'Authorization'));

export function authorizationCases(ctx: Context): HostileCase[] {
  return TOKEN_ROUTES.flatMap((route) => AUTHORIZATIONS.map(([name, value, expected]): HostileCase => {
    const auth: Header[] = value === undefined ? [] : [['Authorization', value]];
    return { name: `${route.name}, Authorization: ${name}`, request: routeRequest(route, ctx, [host(), ...auth, ...otherAuth(route)]), expected };
  }).concat([
    { name: `${route.name}, lower-case bearer`, request: routeRequest(route, ctx, [host(), ['Authorization', 'bearer tok-alice'], ...otherAuth(route)]), expected: route.success },
    // Node keeps the first of two Authorization headers; the valid token first shows that neither is used.
    { name: `${route.name}, two Authorization headers`, request: routeRequest(route, ctx, [host(), ['Authorization', 'Bearer tok-alice'], ['Authorization', 'Bearer nobody-knows-this'], ...otherAuth(route)]), expected: MISSING },
    { name: `${route.name}, the same Authorization twice`, request: routeRequest(route, ctx, [host(), ['Authorization', 'Bearer tok-alice'], ['Authorization', 'Bearer tok-alice'], ...otherAuth(route)]), expected: MISSING },
  ]));
}

const otherAuth = (route: (typeof ROUTES)[number]): Header[] => route.auth.filter(([n]) => n !== 'Authorization');

const SIG = 'c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJl';
const xMatrix = (params: string) => `X-Matrix ${params}`;
const MALFORMED = err(400, 'M_UNAUTHORIZED');
const REFUSED = err(401, 'M_UNAUTHORIZED');
const X_MATRIX: [string, string[], typeof MALFORMED][] = [
  ['scheme alone', ['X-Matrix'], MALFORMED],
  ['no space after the scheme', [`X-Matrix,origin="peer.test"`], MALFORMED],
  ['missing key', [xMatrix(`origin="peer.test",destination="${TENANT}",sig="${SIG}"`)], MALFORMED],
  ['missing sig', [xMatrix(`origin="peer.test",destination="${TENANT}",key="ed25519:a"`)], MALFORMED],
  ['origin not a server name', [xMatrix(`origin="peer test",key="ed25519:a",sig="${SIG}"`)], MALFORMED],
  ['origin with a path', [xMatrix(`origin="peer.test/x",key="ed25519:a",sig="${SIG}"`)], MALFORMED],
  ['destination not a server name', [xMatrix(`origin="peer.test",destination="a..example",key="ed25519:a",sig="${SIG}"`)], MALFORMED],
  ['key without a version', [xMatrix(`origin="peer.test",key="ed25519",sig="${SIG}"`)], MALFORMED],
  ['sig not Base64', [xMatrix(`origin="peer.test",key="ed25519:a",sig="%%%"`)], MALFORMED],
  ['unterminated quote', [xMatrix(`origin="peer.test,key="ed25519:a",sig="${SIG}`)], MALFORMED],
  ['duplicate origin', [xMatrix(`origin="peer.test",origin="peer.test",key="ed25519:a",sig="${SIG}"`)], MALFORMED],
  ['missing comma', [xMatrix(`origin="peer.test" key="ed25519:a",sig="${SIG}"`)], MALFORMED],
  ['parameter without a value', [xMatrix(`origin=,key="ed25519:a",sig="${SIG}"`)], MALFORMED],
  ['a 10 kB signature', [xMatrix(`origin="peer.test",key="ed25519:a",sig="${'A'.repeat(10_000)}"`)], MALFORMED],
  ['two headers disagreeing on origin', [xMatrix(`origin="peer.test",key="ed25519:a",sig="${SIG}"`), xMatrix(`origin="other.test",key="ed25519:b",sig="${SIG}"`)], MALFORMED],
  ['two signatures for one key', [xMatrix(`origin="peer.test",key="ed25519:a",sig="${SIG}"`), xMatrix(`origin="peer.test",key="ed25519:a",sig="${SIG}AA"`)], MALFORMED],
  ['another homeserver as destination', [xMatrix(`origin="peer.test",destination="b.example",key="ed25519:a",sig="${SIG}"`)], REFUSED],
  ['a key that is not ed25519', [xMatrix(`origin="peer.test",destination="${TENANT}",key="rsa:a",sig="${SIG}"`)], REFUSED],
  ['a well-formed header from an origin whose keys cannot be fetched', [xMatrix(`origin="peer.test",destination="${TENANT}",key="ed25519:a",sig="${SIG}"`)], REFUSED],
  ['unquoted values', [xMatrix(`origin=peer.test,destination=${TENANT},key=ed25519:a,sig=${SIG}`)], REFUSED],
  ['a Bearer token on a federation route', ['Bearer tok-alice'], REFUSED],
  ['an X-Matrix-Scoped header with an unknown origin', [`X-MSC4100-Scoped origin="peer.test",destination="${TENANT}",key="ed25519:a",sig="${SIG}"`], REFUSED],
];

export function xMatrixCases(ctx: Context): HostileCase[] {
  return ROUTES.filter((r) => r.family === 'federation').flatMap((route) => X_MATRIX.map(([name, values, expected]): HostileCase => ({
    name: `${route.name}, ${name}`,
    request: routeRequest(route, ctx, [host(), ...values.map((v): Header => ['Authorization', v])]),
    expected,
  })));
}

/** Framing conflicts and oversized requests: Node's parser answers these itself. */
export function framingCases(ctx: Context): HostileCase[] {
  const cases: HostileCase[] = [];
  const big = 'x'.repeat(20 * 1024);
  for (const route of ROUTES.filter((r) => ['upload', 'v1 config', 'federation download', 'v3 download'].includes(r.name))) {
    const base = (headers: Header[], body = '') => requestBytes({ method: route.method, path: route.path(ctx), headers: [host(), ...route.auth, ...headers], body });
    const table: [string, Buffer, number][] = [
      ['Content-Length and Transfer-Encoding', base([['Content-Length', '3'], ['Transfer-Encoding', 'chunked']], '0\r\n\r\n'), 400],
      ['two different Content-Lengths', base([['Content-Length', '3'], ['Content-Length', '4']], 'abcd'), 400],
      ['a negative Content-Length', base([['Content-Length', '-1']]), 400],
      ['a non-numeric Content-Length', base([['Content-Length', '1x']]), 400],
      ['a hex Content-Length', base([['Content-Length', '0x10']]), 400],
      ['two Transfer-Encodings, chunked not last', base([['Transfer-Encoding', 'chunked'], ['Transfer-Encoding', 'gzip']], '0\r\n\r\n'), 400],
      ['a 20 kB header', base([['X-Padding', big]]), 431],
      ['a 20 kB request target', requestBytes({ method: route.method, path: `${route.path(ctx)}${route.path(ctx).includes('?') ? '&' : '?'}q=${big}`, headers: [host()] }), 431],
      ['a space before the colon', Buffer.from(`${route.method} ${route.path(ctx)} HTTP/1.1\r\nHost : ${TENANT}\r\n\r\n`), 400],
      ['a header name with a space', Buffer.from(`${route.method} ${route.path(ctx)} HTTP/1.1\r\nHost: ${TENANT}\r\nBad Header: 1\r\n\r\n`), 400],
      ['a NUL in a header value', Buffer.from(`${route.method} ${route.path(ctx)} HTTP/1.1\r\nHost: ${TENANT}\r\nX-A: a\u0000b\r\n\r\n`, 'latin1'), 400],
      ['a bare LF inside a header line', Buffer.from(`${route.method} ${route.path(ctx)} HTTP/1.1\r\nHost: ${TENANT}\r\nX-A: a\rb\r\n\r\n`), 400],
      ['an unknown method token', Buffer.from(`BREW ${route.path(ctx)} HTTP/1.1\r\nHost: ${TENANT}\r\n\r\n`), 400],
      ['a lower-case method', Buffer.from(`${route.method.toLowerCase()} ${route.path(ctx)} HTTP/1.1\r\nHost: ${TENANT}\r\n\r\n`), 400],
      ['HTTP/9.9', Buffer.from(`${route.method} ${route.path(ctx)} HTTP/9.9\r\nHost: ${TENANT}\r\n\r\n`), 400],
      ['a space inside the target', Buffer.from(`${route.method} /_matrix/a b HTTP/1.1\r\nHost: ${TENANT}\r\n\r\n`), 400],
      ['an obsolete folded header line', Buffer.from(`${route.method} ${route.path(ctx)} HTTP/1.1\r\nHost: ${TENANT}\r\nX-A: a\r\n b\r\n\r\n`), 400],
    ];
    for (const [name, bytes, status] of table) cases.push({ name: `${route.name}, ${name}`, request: bytes, expected: parserRefusal(status) });
  }
  return cases;
}
