// Outbound safety limits: no Location or redirect reaches a private address (SSRF), and deadlines and size limits hold.
import { channel } from 'node:diagnostics_channel';
import type { Socket } from 'node:net';
import type { FederationClient } from '../../src/federation/client.js';
import { UpstreamError } from '../../src/federation/http.js';
import { fetchRemoteMedia } from '../../src/federation/media.js';
import { startDnsServer, type DnsServer } from '../helpers/dns-server.js';
import { createTestFederationClient } from '../helpers/federation-client.js';
import { patternBytes } from '../helpers/media-fixtures.js';
import { client, key, remote, REMOTE, request, TENANT, useOutboundPeers } from '../helpers/outbound-peers.js';
import { startRemoteHomeserver, type RemoteHomeserver } from '../helpers/remote-homeserver.js';
import { collect, failure } from '../helpers/streams.js';
import { describeWithPython } from '../helpers/python-available.js';

useOutboundPeers();

describeWithPython('SSRF: Location and redirects to private addresses', () => {
  let canary: RemoteHomeserver;
  let dns: DnsServer;
  let strict: FederationClient;
  const created: Socket[] = [];
  const onSocket = (message: unknown) => created.push((message as { socket: Socket }).socket);

  beforeAll(async () => {
    canary = await startRemoteHomeserver({ serverName: 'canary.test', trustedKeys: {} });
    canary.files.set('/secret', { body: Buffer.from('internal secret') });
    dns = await startDnsServer({ 'private.test': [{ type: 'A', data: '10.0.0.1' }], 'loopback.test': [{ type: 'A', data: '127.0.0.1' }] });
    // The remote is reached through a trusted override; everything it points us at is filtered by default.
    ({ client: strict } = createTestFederationClient({ keys: { [TENANT]: key }, overrides: { [REMOTE]: remote.url }, dnsServers: [dns.address] }));
    channel('net.client.socket').subscribe(onSocket);
  });

  afterAll(async () => {
    channel('net.client.socket').unsubscribe(onSocket);
    strict.close();
    await Promise.all([canary.close(), dns.close()]);
  });

  // A Location that cannot be fetched fails that media as a bad response (not its origin); the cause says why.
  const refusalOf = (error: Error) => {
    expect((error as UpstreamError).kind).toBe('bad-response');
    return ((error as UpstreamError).cause as UpstreamError).kind;
  };

  test.each([
    ['an IP literal in the blocklist', 'http://10.0.0.1/secret'],
    ['a host name resolving into the blocklist', 'http://private.test/secret'],
  ])('%s is refused before any connection', async (_what, location) => {
    remote.media.set('private', { kind: 'location', location });
    created.length = 0;
    const error = await failure(fetchRemoteMedia(strict, request('private')));
    expect(error).toBeInstanceOf(UpstreamError);
    expect(refusalOf(error)).toBe('blocked');
    expect(error.message).toMatch(/10\.0\.0\.1 is in a blocked IP range/);
    // Whatever sockets were opened (to the remote, or one whose lookup was refused), none reached 10.0.0.1.
    expect(created.filter((s) => s.remoteAddress === '10.0.0.1')).toEqual([]);
    expect(created.every((s) => s.remoteAddress === undefined || s.remoteAddress === '127.0.0.1')).toBe(true);
  });

  test('127.0.0.1 is blocked by default: a Location to a loopback server never connects', async () => {
    for (const location of [`${canary.url}/secret`, `http://loopback.test:${canary.port}/secret`]) {
      remote.media.set('loopback', { kind: 'location', location });
      const error = await failure(fetchRemoteMedia(strict, request('loopback')));
      expect(refusalOf(error)).toBe('blocked');
    }
    expect(canary.connections).toBe(0);
  });

  test('a redirect from an allowed Location target into the blocklist is refused too', async () => {
    remote.files.set('/bounce', { status: 302, headers: { Location: `${canary.url}/secret` } });
    remote.media.set('bounce', { kind: 'location', location: '/bounce' });
    const error = await failure(fetchRemoteMedia(strict, request('bounce')));
    expect(refusalOf(error)).toBe('blocked');
    expect(canary.connections).toBe(0);
  });

  test('a notary URL is configuration, like an override: not filtered', async () => {
    remote.files.set('/prefix/_matrix/key/v2/query', { headers: { 'Content-Type': 'application/json' }, body: Buffer.from('{"server_keys":["ok"]}') });
    const answer = await strict.queryNotary({ serverName: 'notary.test', verifyKeys: {}, url: `${remote.url}/prefix/` }, { server_keys: {} }, '/_matrix/key/v2/query');
    expect(answer).toEqual({ server_keys: ['ok'] });
  });

  test('the allow-list lets an admin reach an internal address', async () => {
    const { client: permissive } = createTestFederationClient({ keys: { [TENANT]: key }, overrides: { [REMOTE]: remote.url }, allowlist: ['127.0.0.1/32'] });
    remote.media.set('loopback', { kind: 'location', location: `${canary.url}/secret` });
    const media = await fetchRemoteMedia(permissive, request('loopback'));
    expect((await collect(media.body)).toString()).toBe('internal secret');
    expect(canary.connections).toBe(1);
    permissive.close();
  });
});

describeWithPython('deadlines and limits', () => {
  test('a server slower than the header deadline times out', async () => {
    remote.media.set('slow', { kind: 'slow', delayMs: 1500, bytes: Buffer.from('late') });
    const started = Date.now();
    const error = await failure(fetchRemoteMedia(client, request('slow', { headersTimeoutMs: 300 })));
    expect((error as UpstreamError).kind).toBe('timeout');
    expect(Date.now() - started).toBeLessThan(1200);
  });

  test('a body that stalls fails after the idle deadline', async () => {
    remote.media.set('stall', { kind: 'stall', bytes: patternBytes(10_000) });
    const media = await fetchRemoteMedia(client, request('stall', { idleMs: 300 }));
    const error = await failure(collect(media.body));
    expect((error as UpstreamError).kind).toBe('timeout');
  });

  test('a body cut off mid-way fails', async () => {
    remote.media.set('cut', { kind: 'truncated', bytes: patternBytes(10_000) });
    const media = await fetchRemoteMedia(client, request('cut'));
    const error = await failure(collect(media.body));
    expect(error.message).toMatch(/cut off|ended/);
  });

  test('a declared length over the limit fails at once; an undeclared one when it gets there', async () => {
    remote.media.set('huge-declared', { kind: 'oversized', size: 2 * 1024 * 1024, declareLength: true });
    const declared = await failure(fetchRemoteMedia(client, request('huge-declared', { maxBytes: 1024 * 1024 })));
    expect((declared as UpstreamError).kind).toBe('too-large');

    remote.media.set('huge', { kind: 'oversized', size: 2 * 1024 * 1024, declareLength: false });
    const media = await fetchRemoteMedia(client, request('huge', { maxBytes: 1024 * 1024 }));
    const streamed = await failure(collect(media.body));
    expect((streamed as UpstreamError).kind).toBe('too-large');
  });

  test('an unreachable server is reported as such', async () => {
    const { client: nowhere } = createTestFederationClient({ keys: { [TENANT]: key }, overrides: { 'down.test': 'http://127.0.0.1:1' }, allowlist: ['127.0.0.1/32'] });
    const error = await failure(fetchRemoteMedia(nowhere, request('x', { serverName: 'down.test' })));
    expect((error as UpstreamError).kind).toBe('unreachable');
    nowhere.close();
  });
});
