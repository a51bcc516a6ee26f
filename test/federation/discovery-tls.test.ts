// Discovery end to end over real TLS: the certificate must be valid for the server name (or the delegated
// name), never merely for the SRV target; no SNI for IP literals; the Host header of each step; and the
// IP filter applied to the addresses DNS gives, at connect time.
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { buildConfig } from '../../src/config/config.js';
import type { FederationClient } from '../../src/federation/client.js';
import { createFederationClient } from '../../src/federation/outbound.js';
import { UpstreamError } from '../../src/federation/http.js';
import { createLogger } from '../../src/log.js';
import { startDnsServer, type DnsServer } from '../helpers/dns-server.js';
import { createTestFederationClient } from '../helpers/federation-client.js';
import { createTestCa, type Certificate, type TestCa } from '../helpers/keys.js';

interface Seen {
  host: string | undefined;
  sni: string | false | null;
}

interface TlsPeer {
  server: Server;
  port: number;
  seen: Seen[];
  connections: number;
}

async function startTlsPeer(cert: Certificate, wellKnown?: string): Promise<TlsPeer> {
  const peer: TlsPeer = { server: undefined as unknown as Server, port: 0, seen: [], connections: 0 };
  peer.server = createServer({ key: cert.key, cert: cert.cert }, (req, res) => {
    peer.seen.push({ host: req.headers.host, sni: (req.socket as TLSSocket).servername });
    if (req.url === '/.well-known/matrix/server' && wellKnown) {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ 'm.server': wellKnown }));
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end('{"server":{"name":"test"}}');
  });
  peer.server.on('secureConnection', () => peer.connections++);
  peer.server.listen(0, '127.0.0.1');
  await once(peer.server, 'listening');
  peer.port = (peer.server.address() as AddressInfo).port;
  return peer;
}

let ca: TestCa;
let dns: DnsServer;
let named: TlsPeer; // certificate for the server names
let targetOnly: TlsPeer; // certificate for the SRV target name only
let ipCert: TlsPeer; // certificate for 127.0.0.1
let wellKnownPeer: TlsPeer;
let client: FederationClient;

const PING = '/_matrix/federation/v1/version';

beforeAll(async () => {
  ca = await createTestCa();
  named = await startTlsPeer(await ca.issue(['srv-e2e.test', 'delegated-e2e.test', 'explicit.test', 'failover.test']));
  targetOnly = await startTlsPeer(await ca.issue(['target-only.test']));
  ipCert = await startTlsPeer(await ca.issue(['127.0.0.1']));
  dns = await startDnsServer({
    '_matrix-fed._tcp.srv-e2e.test': [{ type: 'SRV', data: { priority: 1, weight: 1, port: named.port, target: 'target.test' } }],
    'target.test': [{ type: 'CNAME', data: 'alias.test' }],
    'alias.test': [{ type: 'A', data: '127.0.0.1' }],
    '_matrix-fed._tcp.bad-srv.test': [{ type: 'SRV', data: { priority: 1, weight: 1, port: targetOnly.port, target: 'target-only.test' } }],
    'target-only.test': [{ type: 'A', data: '127.0.0.1' }],
    'explicit.test': [{ type: 'A', data: '127.0.0.1' }],
    'delegated-e2e.test': [{ type: 'A', data: '127.0.0.1' }],
    'wk-e2e.test': [{ type: 'A', data: '127.0.0.1' }],
    '_matrix-fed._tcp.private-srv.test': [{ type: 'SRV', data: { priority: 1, weight: 1, port: named.port, target: 'private-target.test' } }],
    'private-target.test': [{ type: 'A', data: '10.20.30.40' }],
    '_matrix-fed._tcp.failover.test': [
      { type: 'SRV', data: { priority: 1, weight: 1, port: named.port, target: 'private-target.test' } },
      { type: 'SRV', data: { priority: 2, weight: 1, port: 1, target: 'alias.test' } },
      { type: 'SRV', data: { priority: 3, weight: 1, port: named.port, target: 'alias.test' } },
    ],
  });
  wellKnownPeer = await startTlsPeer(await ca.issue(['wk-e2e.test']), `delegated-e2e.test:${named.port}`);
  ({ client } = createTestFederationClient({ dnsServers: [dns.address], extraCa: ca.caPem, allowlist: ['127.0.0.1/32'], wellKnownPort: wellKnownPeer.port }));
});

afterAll(async () => {
  client.close();
  for (const peer of [named, targetOnly, ipCert, wellKnownPeer]) peer.server.close();
  await dns.close();
});

async function ping(serverName: string, via: FederationClient = client): Promise<number> {
  const response = await via.get(serverName, PING, { signed: false });
  response.body.resume();
  return response.status;
}

test('SRV: connects to the target, but the certificate, SNI and Host are the server name', async () => {
  expect(await ping('srv-e2e.test')).toBe(200);
  expect(named.seen.at(-1)).toEqual({ host: 'srv-e2e.test', sni: 'srv-e2e.test' });
});

test('SRV: a certificate valid only for the SRV target is refused', async () => {
  const error = await ping('bad-srv.test').then(() => undefined, (e: unknown) => e as UpstreamError);
  expect(error).toBeInstanceOf(UpstreamError);
  expect(error!.message).toMatch(/ERR_TLS_CERT_ALTNAME_INVALID/);
  expect(targetOnly.seen).toEqual([]);
});

test('explicit port: certificate for the host name, Host with the port', async () => {
  expect(await ping(`explicit.test:${named.port}`)).toBe(200);
  expect(named.seen.at(-1)).toEqual({ host: `explicit.test:${named.port}`, sni: 'explicit.test' });
});

test('IP literal: a certificate for the IP, and no SNI', async () => {
  expect(await ping(`127.0.0.1:${ipCert.port}`)).toBe(200);
  expect(ipCert.seen.at(-1)).toEqual({ host: `127.0.0.1:${ipCert.port}`, sni: false });
});

test('.well-known delegation over TLS: the delegated name is the certificate name and the Host', async () => {
  expect(await ping('wk-e2e.test')).toBe(200);
  // Port 443 in production, where the Host is just the name; tests cannot listen there.
  expect(wellKnownPeer.seen[0]).toEqual({ host: `wk-e2e.test:${wellKnownPeer.port}`, sni: 'wk-e2e.test' });
  expect(named.seen.at(-1)).toEqual({ host: `delegated-e2e.test:${named.port}`, sni: 'delegated-e2e.test' });
});

test('a certificate from an unknown CA is refused', async () => {
  const { client: untrusting } = createTestFederationClient({ dnsServers: [dns.address], allowlist: ['127.0.0.1/32'] });
  const error = await ping(`explicit.test:${named.port}`, untrusting).then(() => undefined, (e: unknown) => e as Error);
  expect(error?.message).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|unable to get local issuer/i);
  untrusting.close();
});

test('an SRV target resolving into the blocklist is refused at connect time', async () => {
  const before = named.connections;
  const error = await ping('private-srv.test').then(() => undefined, (e: unknown) => e as UpstreamError);
  expect(error?.kind).toBe('blocked');
  expect(error?.message).toMatch(/10\.20\.30\.40/);
  expect(named.connections).toBe(before);
});

test('SRV targets are tried in order: blocked and refused ones are skipped', async () => {
  expect(await ping('failover.test')).toBe(200);
  expect(named.seen.at(-1)).toEqual({ host: 'failover.test', sni: 'failover.test' });
});

test('without an allow-list, loopback peers found by discovery are never connected to', async () => {
  const { client: strict } = createTestFederationClient({ dnsServers: [dns.address], extraCa: ca.caPem });
  const before = { named: named.connections, ip: ipCert.connections };
  for (const serverName of ['srv-e2e.test', `explicit.test:${named.port}`, `127.0.0.1:${ipCert.port}`]) {
    const error = await ping(serverName, strict).then(() => undefined, (e: unknown) => e as UpstreamError);
    expect(error?.kind).toBe('blocked');
  }
  expect({ named: named.connections, ip: ipCert.connections }).toEqual(before);
  strict.close();
});

test('the service builds the same stack from its config: federation.dnsServers, caFile, ipAllowlist', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'outbound-config-'));
  writeFileSync(join(dir, 'ca.pem'), ca.caPem);
  const config = buildConfig({ federation: { dnsServers: [dns.address], caFile: 'ca.pem', ipAllowlist: ['127.0.0.1/32'] } }, join(dir, 'config.yaml'));
  expect(config.federation.caFile).toBe(join(dir, 'ca.pem'));
  const configured = createFederationClient(config, { activeKey: async () => undefined }, createLogger('silent'));
  expect(await ping(`explicit.test:${named.port}`, configured)).toBe(200);
  configured.close();
  expect(() => buildConfig({ federation: { dnsServers: '127.0.0.1' } })).toThrow(/dnsServers/);
});
