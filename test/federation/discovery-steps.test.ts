// Server discovery, step by step (https://spec.matrix.org/v1.16/server-server-api/#resolving-server-names), over a loopback DNS server and TLS .well-known.
import type { ResolvedServer } from '../../src/federation/discovery.js';
import { createTestFederationClient } from '../helpers/federation-client.js';
import { UpstreamError } from '../../src/federation/http.js';
import { dns, newStack, stack, START_CLOCK, useDiscoveryPeers, wellKnownHits } from '../helpers/discovery-peers.js';

useDiscoveryPeers(() => START_CLOCK);

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
    const error = await stack.resolver.resolveServerName('refused.test').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UpstreamError);
    expect(error).toMatchObject({ kind: 'unreachable', message: expect.stringMatching(/not available/) });
  });

  test('a failing DNS server for _matrix-fed is not a refusal: discovery goes on to _matrix', async () => {
    const resolved = await stack.resolver.resolveServerName('servfail.test');
    expect(summary(resolved)).toEqual({ step: 'srv-matrix', endpoints: [{ host: 'legacy-after-failure.test', port: 7777 }], hostHeader: 'servfail.test', tlsServername: 'servfail.test', protocol: 'https:' });
  });

  test('an override skips discovery and is trusted (exempt from the IP filter)', async () => {
    const { resolver, client } = createTestFederationClient({ overrides: { 'over.test': 'http://10.1.2.3:8008/ignored/path' } });
    const resolved = await resolver.resolveServerName('over.test');
    expect(resolved).toMatchObject({ step: 'override', protocol: 'http:', endpoints: [{ host: '10.1.2.3', port: 8008 }], hostHeader: '10.1.2.3:8008', trusted: true });
    client.close();
  });

  test('invalid server names are refused', async () => {
    for (const name of ['', 'a b', 'host:0', 'host:99999', '[::1', '1.2.3.04']) {
      const error = await stack.resolver.resolveServerName(name).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UpstreamError);
      expect(error).toMatchObject({ kind: 'unreachable', message: expect.stringMatching(/not a valid server name/) });
    }
  });

  test('a resolver without a default port uses 8448, and its own .well-known cache the test bed\'s port', async () => {
    const fresh = newStack(() => START_CLOCK); // built here, not before all tests, so a mutation of its set-up is run too
    try {
      expect((await fresh.resolver.resolveServerName('1.2.3.4')).endpoints).toEqual([{ host: '1.2.3.4', port: 8448 }]);
      expect(summary(await fresh.resolver.resolveServerName('wk-port.test'))).toMatchObject({ step: 'delegated-explicit-port', hostHeader: 'delegated.test:7777' });
    } finally {
      fresh.client.close();
    }
  });
});
