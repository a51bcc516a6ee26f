// Server discovery, step by step (Server-Server API, "Resolving server names":
// https://spec.matrix.org/v1.16/server-server-api/#resolving-server-names), with a real DNS server on loopback and
// /.well-known/matrix/server served over real TLS (a test CA made with openssl).
import { once } from 'node:events';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { SrvRecord } from 'node:dns';
import type { ResolvedServer, ServerResolver } from '../../src/federation/discovery.js';
import type { FederationClient } from '../../src/federation/client.js';
import { orderSrvRecords } from '../../src/federation/srv.js';
import { cacheTtl } from '../../src/federation/well-known.js';
import { startDnsServer, type DnsServer, type ZoneRecord } from '../helpers/dns-server.js';
import { createTestFederationClient } from '../helpers/federation-client.js';
import { createTestCa, type TestCa } from '../helpers/keys.js';

const HOUR = 3600_000;

interface WellKnownReply {
  status?: number;
  headers?: Record<string, string>;
  body?: string;
}

let ca: TestCa;
let dns: DnsServer;
let wellKnownServer: Server;
let wellKnownPort: number;
/** Host (without port) -> reply of its /.well-known/matrix/server. */
const wellKnown = new Map<string, WellKnownReply>();
const wellKnownHits: string[] = [];
let clock = 1_700_000_000_000;

// Every host name the well-known server answers for; each resolves to it through the test DNS server.
const WELL_KNOWN_HOSTS = [
  'wk-ip.test', 'wk-ip6.test', 'wk-port.test', 'wk-srv.test', 'wk-legacy-srv.test', 'wk-nosrv.test', 'wk-both.test',
  'srv.test', 'legacy-srv.test', 'plain.test', 'both.test', 'prio.test', 'refused.test',
  'bad-json.test', 'no-server.test', 'number-server.test', 'invalid-server.test', 'error-500.test', 'huge.test', 'text-plain.test',
  'redirect.test', 'redirect-target.test', 'loop.test', 'private-redirect.test',
  'cache-default.test', 'cache-600.test', 'cache-huge.test', 'cache-no-store.test', 'cache-error.test', 'concurrent.test',
];

async function startWellKnownServer(): Promise<void> {
  const cert = await ca.issue(WELL_KNOWN_HOSTS);
  wellKnownServer = createServer({ key: cert.key, cert: cert.cert }, (req, res) => {
    const host = (req.headers.host ?? '').replace(/:\d+$/, '');
    wellKnownHits.push(host);
    const reply = req.url === '/.well-known/matrix/server' ? wellKnown.get(host) : undefined;
    if (!reply) {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end('{"errcode":"M_NOT_FOUND","error":"no well-known"}');
      return;
    }
    res.writeHead(reply.status ?? 200, { 'Content-Type': 'application/json', ...reply.headers });
    res.end(reply.body ?? '');
  });
  wellKnownServer.listen(0, '127.0.0.1');
  await once(wellKnownServer, 'listening');
  wellKnownPort = (wellKnownServer.address() as AddressInfo).port;
}

function srv(target: string, port: number, priority = 10, weight = 5): ZoneRecord {
  return { type: 'SRV', data: { priority, weight, port, target } };
}

let stack: { client: FederationClient; resolver: ServerResolver };

function newStack(): { client: FederationClient; resolver: ServerResolver } {
  return createTestFederationClient({
    dnsServers: [dns.address], extraCa: ca.caPem, allowlist: ['127.0.0.1/32'], wellKnownPort, now: () => clock, random: () => 0,
  });
}

beforeAll(async () => {
  ca = await createTestCa();
  const zone: Record<string, ZoneRecord[]> = {};
  for (const host of WELL_KNOWN_HOSTS) zone[host] = [{ type: 'A', data: '127.0.0.1' }];
  Object.assign(zone, {
    '_matrix-fed._tcp.delegated-srv.test': [srv('target-a.test', 1111)],
    'delegated-srv.test': [{ type: 'A', data: '192.0.2.1' }],
    '_matrix._tcp.delegated-legacy.test': [srv('target-b.test', 2222)],
    '_matrix-fed._tcp.srv.test': [srv('target-c.test', 3333)],
    '_matrix._tcp.legacy-srv.test': [srv('target-d.test', 4444)],
    '_matrix-fed._tcp.both.test': [srv('fed.test', 5555)],
    '_matrix._tcp.both.test': [srv('legacy.test', 6666)],
    '_matrix-fed._tcp.delegated-both.test': [srv('fed2.test', 5556)],
    '_matrix._tcp.delegated-both.test': [srv('legacy2.test', 6667)],
    '_matrix-fed._tcp.prio.test': [srv('third.test', 3, 30, 1), srv('first.test', 1, 10, 0), srv('second.test', 2, 10, 7)],
    '_matrix-fed._tcp.refused.test': [srv('.', 0, 0, 0)],
  });
  dns = await startDnsServer(zone);
  await startWellKnownServer();
  wellKnown.set('wk-ip.test', { body: '{"m.server": "192.0.2.7:1234"}' });
  wellKnown.set('wk-ip6.test', { body: '{"m.server": "[2001:db8::7]"}' });
  wellKnown.set('wk-port.test', { body: '{"m.server": "delegated.test:7777"}' });
  wellKnown.set('wk-srv.test', { body: '{"m.server": "delegated-srv.test"}' });
  wellKnown.set('wk-legacy-srv.test', { body: '{"m.server": "delegated-legacy.test"}' });
  wellKnown.set('wk-nosrv.test', { body: '{"m.server": "delegated-nosrv.test"}' });
  wellKnown.set('wk-both.test', { body: '{"m.server": "delegated-both.test"}' });
  stack = newStack();
});

afterAll(async () => {
  stack.client.close();
  wellKnownServer.close();
  await dns.close();
});

function summary(resolved: ResolvedServer) {
  return { step: resolved.step, endpoints: resolved.endpoints, hostHeader: resolved.hostHeader, tlsServername: resolved.tlsServername, protocol: resolved.protocol };
}

describe('resolution steps', () => {
  test.each([
    ['1.2.3.4', { step: 'ip-literal', endpoints: [{ host: '1.2.3.4', port: 8448 }], hostHeader: '1.2.3.4', tlsServername: undefined }],
    ['1.2.3.4:1234', { step: 'ip-literal', endpoints: [{ host: '1.2.3.4', port: 1234 }], hostHeader: '1.2.3.4:1234', tlsServername: undefined }],
    ['[2001:db8::1]', { step: 'ip-literal', endpoints: [{ host: '2001:db8::1', port: 8448 }], hostHeader: '[2001:db8::1]', tlsServername: undefined }],
    ['[2001:db8::1]:99', { step: 'ip-literal', endpoints: [{ host: '2001:db8::1', port: 99 }], hostHeader: '[2001:db8::1]:99', tlsServername: undefined }],
    ['origin.test:1234', { step: 'explicit-port', endpoints: [{ host: 'origin.test', port: 1234 }], hostHeader: 'origin.test:1234', tlsServername: 'origin.test' }],
  ])('1–2. %s needs neither .well-known nor SRV', async (serverName, expected) => {
    const queries = dns.queries.length;
    const hits = wellKnownHits.length;
    expect(summary(await stack.resolver.resolveServerName(serverName))).toEqual({ ...expected, protocol: 'https:' });
    expect(dns.queries.length).toBe(queries);
    expect(wellKnownHits.length).toBe(hits);
  });

  test.each([
    ['wk-ip.test', { step: 'delegated-ip-literal', endpoints: [{ host: '192.0.2.7', port: 1234 }], hostHeader: '192.0.2.7:1234', tlsServername: undefined }],
    ['wk-ip6.test', { step: 'delegated-ip-literal', endpoints: [{ host: '2001:db8::7', port: 8448 }], hostHeader: '[2001:db8::7]', tlsServername: undefined }],
    ['wk-port.test', { step: 'delegated-explicit-port', endpoints: [{ host: 'delegated.test', port: 7777 }], hostHeader: 'delegated.test:7777', tlsServername: 'delegated.test' }],
    ['wk-srv.test', { step: 'delegated-srv-matrix-fed', endpoints: [{ host: 'target-a.test', port: 1111 }], hostHeader: 'delegated-srv.test', tlsServername: 'delegated-srv.test' }],
    ['wk-legacy-srv.test', { step: 'delegated-srv-matrix', endpoints: [{ host: 'target-b.test', port: 2222 }], hostHeader: 'delegated-legacy.test', tlsServername: 'delegated-legacy.test' }],
    ['wk-both.test', { step: 'delegated-srv-matrix-fed', endpoints: [{ host: 'fed2.test', port: 5556 }], hostHeader: 'delegated-both.test', tlsServername: 'delegated-both.test' }],
    ['wk-nosrv.test', { step: 'delegated-default-port', endpoints: [{ host: 'delegated-nosrv.test', port: 8448 }], hostHeader: 'delegated-nosrv.test', tlsServername: 'delegated-nosrv.test' }],
  ])('3. %s delegates through .well-known', async (serverName, expected) => {
    expect(summary(await stack.resolver.resolveServerName(serverName))).toEqual({ ...expected, protocol: 'https:' });
  });

  test('3.3–3.5 query _matrix-fed then _matrix for the delegated name, never SRV of the original name', async () => {
    const from = dns.queries.length;
    await stack.resolver.resolveServerName('wk-nosrv.test');
    await stack.resolver.resolveServerName('wk-nosrv.test'); // cached well-known, same SRV steps again
    expect(dns.queries.slice(from)).toEqual([
      'SRV _matrix-fed._tcp.delegated-nosrv.test', 'SRV _matrix._tcp.delegated-nosrv.test',
      'SRV _matrix-fed._tcp.delegated-nosrv.test', 'SRV _matrix._tcp.delegated-nosrv.test',
    ]);
  });

  test.each([
    ['srv.test', { step: 'srv-matrix-fed', endpoints: [{ host: 'target-c.test', port: 3333 }], hostHeader: 'srv.test', tlsServername: 'srv.test' }],
    ['legacy-srv.test', { step: 'srv-matrix', endpoints: [{ host: 'target-d.test', port: 4444 }], hostHeader: 'legacy-srv.test', tlsServername: 'legacy-srv.test' }],
    ['both.test', { step: 'srv-matrix-fed', endpoints: [{ host: 'fed.test', port: 5555 }], hostHeader: 'both.test', tlsServername: 'both.test' }],
    ['plain.test', { step: 'default-port', endpoints: [{ host: 'plain.test', port: 8448 }], hostHeader: 'plain.test', tlsServername: 'plain.test' }],
  ])('4–6. %s without .well-known', async (serverName, expected) => {
    const from = dns.queries.length;
    expect(summary(await stack.resolver.resolveServerName(serverName))).toEqual({ ...expected, protocol: 'https:' });
    expect(wellKnownHits).toContain(serverName);
    expect(dns.queries.slice(from).filter((q) => q.startsWith('SRV'))[0]).toBe(`SRV _matrix-fed._tcp.${serverName}`);
  });

  test('SRV records are ordered by priority, weight 0 first within one', async () => {
    const resolved = await stack.resolver.resolveServerName('prio.test');
    expect(resolved.endpoints).toEqual([{ host: 'first.test', port: 1 }, { host: 'second.test', port: 2 }, { host: 'third.test', port: 3 }]);
  });

  test('an SRV target of "." means the service is not offered', async () => {
    await expect(stack.resolver.resolveServerName('refused.test')).rejects.toThrow(/not available/);
  });

  test('an override skips discovery and is trusted (exempt from the IP filter)', async () => {
    const { resolver, client } = createTestFederationClient({ overrides: { 'over.test': 'http://10.1.2.3:8008/ignored/path' } });
    const resolved = await resolver.resolveServerName('over.test');
    expect(resolved).toMatchObject({ step: 'override', protocol: 'http:', endpoints: [{ host: '10.1.2.3', port: 8008 }], hostHeader: '10.1.2.3:8008', trusted: true });
    client.close();
  });

  test('invalid server names are refused', async () => {
    for (const name of ['', 'a b', 'host:0', 'host:99999', '[::1', '1.2.3.04']) {
      await expect(stack.resolver.resolveServerName(name)).rejects.toThrow(/not a valid server name/);
    }
  });
});

describe('.well-known validity', () => {
  test.each([
    ['bad-json.test', { body: '{"m.server": ' }],
    ['no-server.test', { body: '{"server": "x.test"}' }],
    ['number-server.test', { body: '{"m.server": 443}' }],
    ['invalid-server.test', { body: '{"m.server": "not a name:99999"}' }],
    ['error-500.test', { status: 500, body: '{"m.server": "looks.valid:443"}' }],
    ['huge.test', { body: `{"m.server": "x.test:1", "pad": "${'x'.repeat(60 * 1024)}"}` }],
    ['loop.test', { status: 302, headers: { Location: '/.well-known/matrix/server' } }],
  ])('%s is an error: discovery goes on with SRV and port 8448', async (host, reply) => {
    wellKnown.set(host, reply);
    const resolved = await stack.resolver.resolveServerName(host);
    expect(resolved.step).toBe('default-port');
    expect(resolved.hostHeader).toBe(host);
  });

  test('the body is JSON whatever the Content-Type says', async () => {
    wellKnown.set('text-plain.test', { headers: { 'Content-Type': 'text/plain' }, body: '{"m.server": "elsewhere.test:443"}' });
    expect((await stack.resolver.resolveServerName('text-plain.test')).step).toBe('delegated-explicit-port');
  });

  test('redirects are followed', async () => {
    wellKnown.set('redirect.test', { status: 301, headers: { Location: `https://redirect-target.test:${wellKnownPort}/.well-known/matrix/server` } });
    wellKnown.set('redirect-target.test', { body: '{"m.server": "moved.test:8443"}' });
    const resolved = await stack.resolver.resolveServerName('redirect.test');
    expect(resolved).toMatchObject({ step: 'delegated-explicit-port', hostHeader: 'moved.test:8443' });
    expect(wellKnownHits).toContain('redirect-target.test');
  });

  test('a redirect to a blocked address is not followed (and so counts as no delegation)', async () => {
    wellKnown.set('private-redirect.test', { status: 302, headers: { Location: 'https://10.0.0.1/.well-known/matrix/server' } });
    expect((await stack.resolver.resolveServerName('private-redirect.test')).step).toBe('default-port');
  });
});

describe('.well-known caching', () => {
  const hitsOf = (host: string) => wellKnownHits.filter((h) => h === host).length;

  test('24 h by default', async () => {
    wellKnown.set('cache-default.test', { body: '{"m.server": "a.test:1"}' });
    await stack.resolver.resolveServerName('cache-default.test');
    clock += 24 * HOUR - 1;
    await stack.resolver.resolveServerName('cache-default.test');
    expect(hitsOf('cache-default.test')).toBe(1);
    clock += 2;
    await stack.resolver.resolveServerName('cache-default.test');
    expect(hitsOf('cache-default.test')).toBe(2);
  });

  test('Cache-Control max-age is respected, at most 48 h, at least 5 min', async () => {
    wellKnown.set('cache-600.test', { headers: { 'Cache-Control': 'public, max-age=600' }, body: '{"m.server": "a.test:1"}' });
    wellKnown.set('cache-huge.test', { headers: { 'Cache-Control': 'max-age=31536000' }, body: '{"m.server": "a.test:1"}' });
    wellKnown.set('cache-no-store.test', { headers: { 'Cache-Control': 'no-store' }, body: '{"m.server": "a.test:1"}' });
    for (const host of ['cache-600.test', 'cache-huge.test', 'cache-no-store.test']) await stack.resolver.resolveServerName(host);
    const expiries = { 'cache-600.test': 600_000, 'cache-huge.test': 48 * HOUR, 'cache-no-store.test': 5 * 60_000 };
    const start = clock;
    for (const [host, ttl] of Object.entries(expiries)) {
      clock = start + ttl - 1;
      await stack.resolver.resolveServerName(host);
      expect(hitsOf(host)).toBe(1);
      clock = start + ttl;
      await stack.resolver.resolveServerName(host);
      expect(hitsOf(host)).toBe(2);
    }
  });

  test('failures are cached with exponential back-off up to 1 h; a success resets it', async () => {
    const host = 'cache-error.test';
    wellKnown.delete(host); // 404
    const expected = [2, 4, 8, 16, 32, 60, 60].map((minutes) => minutes * 60_000);
    await stack.resolver.resolveServerName(host);
    for (const [i, ttl] of expected.entries()) {
      const at = clock;
      clock = at + ttl - 1;
      await stack.resolver.resolveServerName(host);
      expect(hitsOf(host)).toBe(i + 1);
      clock = at + ttl;
      await stack.resolver.resolveServerName(host);
      expect(hitsOf(host)).toBe(i + 2);
    }
    wellKnown.set(host, { body: '{"m.server": "back.test:1"}' });
    clock += HOUR;
    expect((await stack.resolver.resolveServerName(host)).hostHeader).toBe('back.test:1');
    wellKnown.delete(host);
    clock += 24 * HOUR;
    await stack.resolver.resolveServerName(host); // fails again: back to the first step of the back-off
    const hits = hitsOf(host);
    clock += 2 * 60_000;
    await stack.resolver.resolveServerName(host);
    expect(hitsOf(host)).toBe(hits + 1);
  });

  test('concurrent lookups share one request', async () => {
    wellKnown.set('concurrent.test', { body: '{"m.server": "a.test:1"}' });
    await Promise.all(Array.from({ length: 10 }, () => stack.resolver.resolveServerName('concurrent.test')));
    expect(hitsOf('concurrent.test')).toBe(1);
  });

  test('cacheTtl reads the directives case-insensitively', () => {
    const ttl = (value?: string) => cacheTtl({ headers: value === undefined ? {} : { 'cache-control': value } });
    expect(ttl()).toBe(24 * HOUR);
    expect(ttl('Max-Age=3600, must-revalidate')).toBe(HOUR);
    expect(ttl('no-cache')).toBe(5 * 60_000);
    expect(ttl('private')).toBe(24 * HOUR);
  });
});

describe('RFC 2782 ordering', () => {
  const record = (name: string, priority: number, weight: number): SrvRecord => ({ name, port: 1, priority, weight });

  test('lower priority always first', () => {
    for (let i = 0; i < 50; i++) {
      const ordered = orderSrvRecords([record('c', 30, 100), record('a', 10, 1), record('b', 20, 50)]);
      expect(ordered.map((r) => r.name)).toEqual(['a', 'b', 'c']);
    }
  });

  test('within a priority, picks follow the weights', () => {
    const firsts = { light: 0, heavy: 0 };
    const trials = 4000;
    for (let i = 0; i < trials; i++) {
      const [first] = orderSrvRecords([record('light', 10, 1), record('heavy', 10, 3)]);
      firsts[first!.name as 'light' | 'heavy']++;
    }
    // RFC 2782 draws from [0, total]: P(light first) = 2/5 with weights 1 and 3 (0 and 1 pick it).
    expect(firsts.light / trials).toBeGreaterThan(0.35);
    expect(firsts.light / trials).toBeLessThan(0.45);
  });

  test('every record appears once', () => {
    const records = Array.from({ length: 20 }, (_, i) => record(`r${i}`, i % 3, i % 4));
    expect(orderSrvRecords(records).map((r) => r.name).sort()).toEqual(records.map((r) => r.name).sort());
  });
});
