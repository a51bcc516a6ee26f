// /.well-known/matrix/server in discovery: which answers count as delegation, and how long they (and failures) are cached.
import { cacheTtl, parseWellKnown } from '../../src/federation/well-known.js';
import { stack, START_CLOCK, useDiscoveryPeers, wellKnown, wellKnownHits, wellKnownPort } from '../helpers/discovery-peers.js';

const HOUR = 3600_000;
let clock = START_CLOCK;

useDiscoveryPeers(() => clock);

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

  test('cacheTtl: "no-store" wins over a max-age, the first max-age counts, and only a whole max-age directive is one', () => {
    const ttl = (value: string) => cacheTtl({ headers: { 'cache-control': value } });
    expect(ttl('no-store, max-age=3600')).toBe(5 * 60_000);
    expect(ttl('max-age=3600, max-age=7200')).toBe(HOUR);
    expect(ttl('max-age = 3600')).toBe(HOUR);
    expect(ttl('max-age="3600"')).toBe(HOUR);
    for (const notMaxAge of ['s-maxage=3600', 'x-max-age=3600', 'max-age=3600s', 'max-agex=3600', 'max-age=']) expect(ttl(notMaxAge)).toBe(24 * HOUR);
  });
});

describe('parseWellKnown', () => {
  const parse = (text: string) => parseWellKnown(Buffer.from(text));

  test('delegates only to a valid server name in "m.server" of a JSON object', () => {
    expect(parse('{"m.server": "delegated.test:8443"}')).toEqual({ delegated: 'delegated.test:8443' });
    for (const text of ['null', '"m.server"', '["delegated.test"]', '{"m.server": ["delegated.test"]}', '{"m.server": null}', '{"m.server": "a b"}', '{"m.server"', '']) {
      expect(parse(text)).toEqual({ error: expect.any(String) });
    }
  });
});
