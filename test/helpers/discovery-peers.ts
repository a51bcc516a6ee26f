// Discovery test bed: a test CA, a loopback DNS server with the discovery zone, and a TLS server for /.well-known/matrix/server.
import { once } from 'node:events';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { ServerResolver } from '../../src/federation/discovery.js';
import type { FederationClient } from '../../src/federation/client.js';
import { startDnsServer, type DnsServer, type ZoneRecord } from './dns-server.js';
import { createTestFederationClient } from './federation-client.js';
import { createTestCa, type TestCa } from './keys.js';

/** Where the discovery tests' clock starts. */
export const START_CLOCK = 1_700_000_000_000;

export interface WellKnownReply {
  status?: number;
  headers?: Record<string, string>;
  body?: string;
}

let ca: TestCa;
export let dns: DnsServer;
let wellKnownServer: Server;
export let wellKnownPort: number;
/** Host (without port) -> reply of its /.well-known/matrix/server. */
export const wellKnown = new Map<string, WellKnownReply>();
export const wellKnownHits: string[] = [];

// Every host name the well-known server answers for; each resolves to it through the test DNS server.
const WELL_KNOWN_HOSTS = [
  'wk-ip.test', 'wk-ip6.test', 'wk-port.test', 'wk-srv.test', 'wk-legacy-srv.test', 'wk-nosrv.test', 'wk-both.test',
  'srv.test', 'legacy-srv.test', 'plain.test', 'both.test', 'prio.test', 'refused.test', 'servfail.test',
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

export let stack: { client: FederationClient; resolver: ServerResolver };

/** A resolver of its own on the test bed, for tests that must build theirs inside the test. */
export function newStack(now: () => number): { client: FederationClient; resolver: ServerResolver } {
  return createTestFederationClient({
    dnsServers: [dns.address], extraCa: ca.caPem, allowlist: ['127.0.0.1/32'], wellKnownPort, now, random: () => 0,
  });
}

/**
 * Starts the test bed before the calling file's tests, with a resolver on the clock `now`; stops it after. The
 * exported `let` bindings are live (ESM), so test files read them as if they were their own variables.
 */
export function useDiscoveryPeers(now: () => number): void {
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
      '_matrix-fed._tcp.servfail.test': [{ type: 'SERVFAIL' }],
      '_matrix._tcp.servfail.test': [srv('legacy-after-failure.test', 7777)],
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
    stack = newStack(now);
  });

  afterAll(async () => {
    stack.client.close();
    wellKnownServer.close();
    await dns.close();
  });
}
