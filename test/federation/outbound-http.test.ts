// The outbound HTTP layer on its own, against loopback peers: which endpoint failures move on to the next,
// what each request carries and how redirects end (response bodies' bounds: outbound-body-limits.test.ts).
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { Dns } from '../../src/federation/dns.js';
import { OutboundHttp, targetForUrl, UpstreamError, type Target } from '../../src/federation/http.js';
import { IpFilter } from '../../src/federation/ip-filter.js';
import { startDnsServer } from '../helpers/dns-server.js';
import { collect, failure } from '../helpers/streams.js';
import { freePort } from '../../bench/media-processes.js';

const TIMEOUTS = { connectMs: 2000, headersMs: 3000 };

interface Seen { method: string; url: string; headers: IncomingMessage['headers']; body: string }
const seen: Seen[] = [];
/** Path -> how the peer answers it; unknown paths get 200 "ok". */
const routes = new Map<string, { status: number; headers?: Record<string, string>; body?: string; hang?: boolean }>();
let peer: Server;
let port: number;
let http: OutboundHttp;

beforeAll(async () => {
  peer = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString() });
      const route = routes.get(new URL(req.url!, 'http://x').pathname) ?? { status: 200, body: 'ok' };
      if (route.hang) return;
      res.writeHead(route.status, route.headers ?? {});
      res.end(route.body);
    });
  });
  peer.listen(0, '127.0.0.1');
  await once(peer, 'listening');
  port = (peer.address() as AddressInfo).port;
});
afterAll(() => {
  peer.closeAllConnections();
  return new Promise((resolve) => peer.close(resolve));
});
beforeEach(() => {
  seen.length = 0;
  routes.clear();
  http = new OutboundHttp({ dns: new Dns({ timeoutMs: 1000 }), filter: new IpFilter({ allowlist: ['127.0.0.1/32'] }) });
});
afterEach(() => http.close());

const target = (endpoints: Target['endpoints'], extra: Partial<Target> = {}): Target => ({ protocol: 'http:', endpoints, hostHeader: 'peer.test', tlsServername: undefined, ...extra });
const text = async (response: { body: AsyncIterable<Uint8Array> }) => (await collect(response.body)).toString();

describe('targetForUrl', () => {
  test('a URL gives its host and port, or the scheme\'s default port, and a certificate name only for a host name', () => {
    expect(targetForUrl(new URL('https://media.example.org/x'))).toEqual({
      protocol: 'https:', endpoints: [{ host: 'media.example.org', port: 443 }], hostHeader: 'media.example.org', tlsServername: 'media.example.org',
    });
    expect(targetForUrl(new URL('http://cdn.example.org/x'))).toMatchObject({ protocol: 'http:', endpoints: [{ host: 'cdn.example.org', port: 80 }] });
    expect(targetForUrl(new URL('http://[2001:db8::1]:8008/x'))).toEqual({
      protocol: 'http:', endpoints: [{ host: '2001:db8::1', port: 8008 }], hostHeader: '[2001:db8::1]:8008', tlsServername: undefined,
    });
    expect(targetForUrl(new URL('https://192.0.2.7:8448/'))).toMatchObject({ endpoints: [{ host: '192.0.2.7', port: 8448 }], tlsServername: undefined });
  });
});

describe('request', () => {
  test('sends the method, the User-Agent, the target\'s Host over any given one, and a body with its length', async () => {
    const body = Buffer.from('{"a":"é"}');
    await text(await http.request(target([{ host: '127.0.0.1', port }]), { method: 'POST', path: '/p?q=1', headers: { Host: 'evil.test', 'X-Extra': '1' }, body, timeouts: TIMEOUTS }));
    expect(seen.map((s) => [s.method, s.url, s.headers.host, s.headers['user-agent'], s.headers['x-extra'], s.headers['content-length'], s.body]))
      .toEqual([['POST', '/p?q=1', 'peer.test', 'matrix-media-repo-ts', '1', String(body.length), '{"a":"é"}']]);
  });

  test('a GET without a body says no length, and the response carries its target, path and URL', async () => {
    const t = target([{ host: '127.0.0.1', port }]);
    const response = await http.request(t, { path: '/g?x=2', timeouts: TIMEOUTS });
    await text(response);
    expect([seen[0]!.method, seen[0]!.headers['content-length'], response.target, response.path, response.url.href]).toEqual(['GET', undefined, t, '/g?x=2', 'http://peer.test/g?x=2']);
  });

  test('a refused and a blocked endpoint are skipped; the next one answers', async () => {
    const strict = new OutboundHttp({ dns: new Dns({ timeoutMs: 1000 }), filter: new IpFilter({ allowlist: ['127.0.0.1/32'] }) });
    try {
      const response = await strict.request(target([{ host: '127.0.0.1', port: await freePort() }, { host: '10.0.0.1', port }, { host: '127.0.0.1', port }]), { path: '/', timeouts: TIMEOUTS });
      expect([response.status, await text(response)]).toEqual([200, 'ok']);
    } finally {
      strict.close();
    }
  });

  test('the last endpoint\'s failure is the error: blocked, or unreachable naming the address', async () => {
    const refused = await freePort();
    const blocked = await failure(http.request(target([{ host: '127.0.0.1', port: refused }, { host: '10.0.0.1', port }]), { path: '/', timeouts: TIMEOUTS }));
    expect([(blocked as UpstreamError).kind, blocked.message]).toEqual(['blocked', expect.stringMatching(/10\.0\.0\.1 is in a blocked IP range/)]);
    const unreachable = await failure(http.request(target([{ host: '10.0.0.1', port }, { host: '127.0.0.1', port: refused }]), { path: '/', timeouts: TIMEOUTS }));
    expect([(unreachable as UpstreamError).kind, unreachable.message]).toEqual(['unreachable', `cannot connect to 127.0.0.1:${refused}: ECONNREFUSED`]);
    const none = await failure(http.request(target([]), { path: '/', timeouts: TIMEOUTS }));
    expect([(none as UpstreamError).kind, none.message]).toEqual(['unreachable', 'no endpoint to connect to']);
  });

  test('a trusted target reaches a blocked IP literal', async () => {
    const strict = new OutboundHttp({ dns: new Dns({ timeoutMs: 1000 }), filter: new IpFilter({}) });
    try {
      const response = await strict.request(target([{ host: '127.0.0.1', port }], { trusted: true }), { path: '/', timeouts: TIMEOUTS });
      expect(await text(response)).toBe('ok');
      expect((await failure(strict.request(target([{ host: '127.0.0.1', port }]), { path: '/', timeouts: TIMEOUTS })) as UpstreamError).kind).toBe('blocked');
    } finally {
      strict.close();
    }
  });

  test('a server that accepts but does not answer in time is a timeout, and the next endpoint is not tried', async () => {
    routes.set('/hang', { status: 200, hang: true });
    const started = Date.now();
    const error = await failure(http.request(target([{ host: '127.0.0.1', port }, { host: '127.0.0.1', port }]), { path: '/hang', timeouts: { connectMs: 2000, headersMs: 300 } }));
    expect([(error as UpstreamError).kind, error.message]).toEqual(['timeout', 'peer.test did not answer within 300 ms']);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(seen).toHaveLength(1);
  });
});

describe('connections', () => {
  test('a trusted target may resolve into the blocklist; the same name untrusted is refused before connecting', async () => {
    const dns = await startDnsServer({ 'peer.internal': [{ type: 'A', data: '127.0.0.1' }] });
    const strict = new OutboundHttp({ dns: new Dns({ servers: [dns.address], timeoutMs: 1000 }), filter: new IpFilter({}) });
    try {
      const named = target([{ host: 'peer.internal', port }]);
      expect(await text(await strict.request({ ...named, trusted: true }, { path: '/', timeouts: TIMEOUTS }))).toBe('ok');
      const error = await failure(strict.request(named, { path: '/', timeouts: TIMEOUTS }));
      expect([(error as UpstreamError).kind, error.message]).toEqual(['blocked', expect.stringMatching(/127\.0\.0\.1 is in a blocked IP range/)]);
      expect(seen).toHaveLength(1);
    } finally {
      strict.close();
      await dns.close();
    }
  });

  test('a TLS peer that never completes the handshake runs into the connect deadline, and the next endpoint is tried', async () => {
    const held: Socket[] = [];
    const silent = createNetServer((socket) => void held.push(socket)).listen(0, '127.0.0.1');
    await once(silent, 'listening');
    const silentPort = (silent.address() as AddressInfo).port;
    try {
      const tls = target([{ host: '127.0.0.1', port: silentPort }], { protocol: 'https:' });
      const started = Date.now();
      const error = await failure(http.request(tls, { path: '/', timeouts: { connectMs: 200, headersMs: 5000 } }));
      expect([(error as UpstreamError).kind, error.message]).toEqual(['unreachable', `connecting to 127.0.0.1:${silentPort} timed out`]);
      expect(Date.now() - started).toBeLessThan(3000);
      // The plain HTTP peer after it is connected to, and fails the handshake at once: unreachable too.
      let reached = 0;
      const count = () => void reached++;
      peer.on('connection', count);
      const next = await failure(http.request({ ...tls, endpoints: [tls.endpoints[0]!, { host: '127.0.0.1', port }] }, { path: '/', timeouts: { connectMs: 200, headersMs: 5000 } }));
      peer.off('connection', count);
      expect([held.length, reached, (next as UpstreamError).kind]).toEqual([2, 1, 'unreachable']);
    } finally {
      for (const socket of held) socket.destroy();
      silent.close();
    }
  });
});

describe('fetchUrl', () => {
  const spec = { timeouts: TIMEOUTS, maxRedirects: 2 };

  test('only http and https URLs are fetched', async () => {
    const error = await failure(http.fetchUrl(new URL('ftp://127.0.0.1/x'), spec));
    expect([(error as UpstreamError).kind, error.message]).toEqual(['bad-response', 'cannot fetch a ftp: URL']);
    expect(seen).toHaveLength(0);
  });

  test('exactly maxRedirects redirects are followed, one more fails, and a redirect without Location is the answer', async () => {
    routes.set('/r0', { status: 301, headers: { Location: '/r1' } });
    routes.set('/r1', { status: 308, headers: { Location: `http://127.0.0.1:${port}/r2` } });
    routes.set('/r2', { status: 200, body: 'there' });
    expect(await text(await http.fetchUrl(new URL(`http://127.0.0.1:${port}/r0`), spec))).toBe('there');
    const error = await failure(http.fetchUrl(new URL(`http://127.0.0.1:${port}/r0`), { ...spec, maxRedirects: 1 }));
    expect([(error as UpstreamError).kind, error.message]).toEqual(['bad-response', 'more than 1 redirects']);
    routes.set('/bare', { status: 302, body: 'no location' });
    const bare = await http.fetchUrl(new URL(`http://127.0.0.1:${port}/bare`), spec);
    expect([bare.status, await text(bare)]).toEqual([302, 'no location']);
  });

  test('a redirect\'s body is read to its end (more than socket buffers hold), so its connection is not left stuck', async () => {
    routes.set('/moved', { status: 302, headers: { Location: '/landed' }, body: 'x'.repeat(16 * 1024 * 1024) });
    const onRequest = (req: IncomingMessage, res: ServerResponse) => {
      if (req.url === '/moved') res.once('finish', () => flushed(true));
    };
    let flushed: (done: boolean) => void = () => undefined;
    const drained = new Promise<boolean>((resolve) => (flushed = resolve));
    setTimeout(() => flushed(false), 5000).unref();
    peer.on('request', onRequest);
    expect(await text(await http.fetchUrl(new URL(`http://127.0.0.1:${port}/moved`), spec))).toBe('ok');
    const done = await drained;
    peer.off('request', onRequest);
    expect(done).toBe(true);
  });

  test('a redirect whose Location is not a URL is a bad response', async () => {
    routes.set('/bad', { status: 303, headers: { Location: 'http://[nope' } });
    const error = await failure(http.fetchUrl(new URL(`http://127.0.0.1:${port}/bad`), spec));
    expect([(error as UpstreamError).kind, error.message]).toEqual(['bad-response', 'a redirect has an invalid Location']);
  });

  test('a URL on the base response\'s origin goes to its target (Host and endpoint); another origin is its own', async () => {
    const base = await http.request(target([{ host: '127.0.0.1', port }], { hostHeader: 'named.test' }), { path: '/first', timeouts: TIMEOUTS });
    await text(base);
    await text(await http.fetchUrl(new URL('http://named.test/same'), spec, base));
    await text(await http.fetchUrl(new URL(`http://127.0.0.1:${port}/other`), spec, base));
    expect(seen.map((s) => [s.url, s.headers.host])).toEqual([['/first', 'named.test'], ['/same', 'named.test'], ['/other', `127.0.0.1:${port}`]]);
  });
});
