// The outbound Authorization scheme chosen by what each hosted homeserver publishes (auth-schemes.ts):
// X-Matrix where its /_matrix/key/v2/server lists our key (plus X-MSC4100-Scoped where the MSC4100 endpoint
// lists it with m.requests), else X-MSC4100-Scoped first and the downgrade. Peers check the headers with
// Synapse's signedjson; "legacy" peers know only X-Matrix and answer anything else 401.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuthSchemes } from '../../src/federation/auth-schemes.js';
import type { FederationClient } from '../../src/federation/client.js';
import { fetchRemoteMedia } from '../../src/federation/media.js';
import { createLogger } from '../../src/log.js';
import { REQUESTS_SCOPE } from '../../src/matrix/x-matrix.js';
import type { RunningService } from '../../src/service.js';
import { createTestFederationClient } from '../helpers/federation-client.js';
import { LoopbackKeyServer, SCOPED, serverKeysResponse, V2, type ServerKeysSpec } from '../helpers/key-server.js';
import { generateSynapseKey, type SynapseKey } from '../helpers/keys.js';
import { collect } from '../helpers/streams.js';
import { rawRequest } from '../helpers/raw-http.js';
import { PythonWorker } from '../helpers/python-worker.js';
import { startRemoteHomeserver, type RemoteHomeserver } from '../helpers/remote-homeserver.js';
import { startTestService } from '../helpers/service-under-test.js';
import { startStandInHomeserver, type StandInHomeserver } from '../helpers/stand-in-homeserver.js';

const DAY = 24 * 3600_000;
let python: PythonWorker;
let ours: SynapseKey;
let homeserverKey: SynapseKey;
let keyServer: LoopbackKeyServer;
let peer: RemoteHomeserver;
let legacyPeer: RemoteHomeserver;

beforeAll(async () => {
  python = PythonWorker.acquire();
  [ours, homeserverKey] = await Promise.all([generateSynapseKey('mmr'), generateSynapseKey('synapse')]);
  keyServer = await LoopbackKeyServer.start();
  const trustedKeys = { 'tenant.test': { [ours.keyId]: ours.publicKey } };
  peer = await startRemoteHomeserver({ serverName: 'peer.test', trustedKeys });
  legacyPeer = await startRemoteHomeserver({ serverName: 'legacy.test', trustedKeys, acceptScoped: false });
  for (const remote of [peer, legacyPeer]) remote.media.set('m', { kind: 'multipart', bytes: Buffer.from('media bytes') });
});

afterAll(async () => {
  await Promise.all([keyServer.close(), peer.close(), legacyPeer.close()]);
  await python.release();
});

/** The homeserver's key endpoints, self-signed (Synapse signs with every key of its combined key file). */
async function publish(server: LoopbackKeyServer, serverName: string, where: { v2?: SynapseKey[]; scoped?: SynapseKey[] }): Promise<void> {
  server.clear();
  const spec = (keys: SynapseKey[], extra: Partial<ServerKeysSpec> = {}): ServerKeysSpec => ({ serverName, verifyKeys: keys, validUntilTs: Date.now() + DAY, ...extra });
  if (where.v2) server.answer(V2, await serverKeysResponse(python, spec(where.v2)));
  if (where.scoped) {
    const scopes = Object.fromEntries(where.scoped.map((k) => [k.keyId, [REQUESTS_SCOPE]]));
    server.answer(SCOPED, await serverKeysResponse(python, spec(where.scoped, { scopes })));
  }
}

describe('the scheme chooser with our signing client', () => {
  let client: FederationClient;
  let schemes: AuthSchemes;
  beforeAll(() => {
    schemes = new AuthSchemes({
      homeservers: ['tenant.test'],
      signingKeys: { activeKey: async () => ({ keyId: ours.keyId, publicKey: ours.publicKey, scope: [REQUESTS_SCOPE] }) },
      fetchKeys: (serverName, path) => client.fetchServerKeysJson(serverName, path),
      log: createLogger('silent'),
      refreshMs: 100,
    });
    ({ client } = createTestFederationClient({
      keys: { 'tenant.test': ours },
      overrides: { 'tenant.test': keyServer.url, 'peer.test': peer.url, 'legacy.test': legacyPeer.url },
      allowlist: ['127.0.0.1/32'],
      schemes,
    }));
  });
  afterAll(() => {
    schemes.stop();
    client.close();
  });

  async function fetchFrom(remote: RemoteHomeserver, serverName: string) {
    remote.requests.length = 0;
    const media = await fetchRemoteMedia(client, { origin: 'tenant.test', serverName, mediaId: 'm', timeoutMs: 5000, headersTimeoutMs: 3000, maxBytes: 1024, idleMs: 1000 });
    expect((await collect(media.body)).toString()).toBe('media bytes');
    return remote.requests.map((r) => ({ schemes: r.authorization.map((h) => h.split(' ', 1)[0]), ok: r.verdict?.ok }));
  }

  test('our key in /v2/server: X-Matrix alone, and an X-Matrix-only peer refuses nothing', async () => {
    await publish(keyServer, 'tenant.test', { v2: [homeserverKey, ours] });
    await schemes.refresh('tenant.test');
    expect(schemes.describe('tenant.test')).toEqual({ scheme: 'x-matrix', reason: `${ours.keyId} is in /_matrix/key/v2/server (not with m.requests at /_matrix/key/unstable/org.matrix.msc4100/server)` });
    expect(await fetchFrom(legacyPeer, 'legacy.test')).toEqual([{ schemes: ['X-Matrix'], ok: true }]);
  });

  test('also with m.requests at the MSC4100 endpoint: both schemes in two headers, accepted by both kinds of peer', async () => {
    await publish(keyServer, 'tenant.test', { v2: [homeserverKey, ours], scoped: [ours] });
    await schemes.refresh('tenant.test');
    expect(schemes.describe('tenant.test')?.scheme).toBe('x-matrix+scoped');
    expect(await fetchFrom(legacyPeer, 'legacy.test')).toEqual([{ schemes: ['X-Matrix', 'X-MSC4100-Scoped'], ok: true }]);
    expect(await fetchFrom(peer, 'peer.test')).toEqual([{ schemes: ['X-Matrix', 'X-MSC4100-Scoped'], ok: true }]);
    // Never the stable name, which Synapse would parse as a malformed X-Matrix and refuse.
    expect([...peer.requests, ...legacyPeer.requests].flatMap((r) => r.authorization).filter((h) => h.startsWith('X-Matrix-Scoped'))).toEqual([]);
  });

  test('only at the MSC4100 endpoint: X-MSC4100-Scoped first, then the downgrade', async () => {
    await publish(keyServer, 'tenant.test', { v2: [homeserverKey], scoped: [ours] });
    await schemes.refresh('tenant.test');
    expect(schemes.describe('tenant.test')).toEqual({ scheme: 'scoped-first', reason: `${ours.keyId} is only at /_matrix/key/unstable/org.matrix.msc4100/server: X-MSC4100-Scoped first, X-Matrix after an auth refusal` });
    expect(await fetchFrom(legacyPeer, 'legacy.test')).toEqual([{ schemes: ['X-MSC4100-Scoped'], ok: false }, { schemes: ['X-Matrix'], ok: true }]);
  });

  test('published nowhere (or unreadable): scoped-first, saying why', async () => {
    await publish(keyServer, 'tenant.test', { v2: [homeserverKey] });
    await schemes.refresh('tenant.test');
    expect(schemes.describe('tenant.test')?.scheme).toBe('scoped-first');
    expect(schemes.describe('tenant.test')?.reason).toMatch(/not found published \(\/_matrix\/key\/v2\/server: not listed; .*answered 404/);
  });

  test('the timer looks again: a key newly published in /v2/server switches the scheme', async () => {
    await publish(keyServer, 'tenant.test', { scoped: [ours] });
    await schemes.refresh('tenant.test');
    expect(schemes.describe('tenant.test')?.scheme).toBe('scoped-first');
    void schemes.start();
    await publish(keyServer, 'tenant.test', { v2: [homeserverKey, ours] });
    const deadline = Date.now() + 5000;
    while (schemes.describe('tenant.test')?.scheme !== 'x-matrix' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(schemes.describe('tenant.test')?.scheme).toBe('x-matrix');
    schemes.stop();
    await new Promise((r) => setTimeout(r, 50)); // a look already under way may still land
    const looks = keyServer.count(V2);
    await new Promise((r) => setTimeout(r, 300));
    expect(keyServer.count(V2)).toBe(looks);
  });
});

describe('the service, two homeservers, one X-Matrix-only peer', () => {
  let service: RunningService;
  let whoami: StandInHomeserver;
  let keysA: LoopbackKeyServer;
  let keysB: LoopbackKeyServer;
  let keyA: SynapseKey;
  let keyB: SynapseKey;
  let peerX: RemoteHomeserver;
  const logLines: string[] = [];

  beforeAll(async () => {
    [keyA, keyB] = await Promise.all([generateSynapseKey('a1'), generateSynapseKey('b1')]);
    [keysA, keysB] = await Promise.all([LoopbackKeyServer.start(), LoopbackKeyServer.start()]);
    await publish(keysA, 'a.test', { v2: [homeserverKey, keyA] });
    await publish(keysB, 'b.test', { v2: [homeserverKey], scoped: [keyB] });
    peerX = await startRemoteHomeserver({ serverName: 'x.test', trustedKeys: { 'a.test': { [keyA.keyId]: keyA.publicKey }, 'b.test': { [keyB.keyId]: keyB.publicKey } }, acceptScoped: false });
    peerX.media.set('shared', { kind: 'multipart', bytes: Buffer.from('remote media'), contentType: 'text/plain' });
    peerX.media.set('other', { kind: 'multipart', bytes: Buffer.from('remote media'), contentType: 'text/plain' });
    whoami = await startStandInHomeserver({ 'tok-a': { userId: '@u:a.test' }, 'tok-b': { userId: '@u:b.test' } });
    const dir = mkdtempSync(join(tmpdir(), 'auth-schemes-'));
    writeFileSync(join(dir, 'a.key'), keyA.file);
    writeFileSync(join(dir, 'b.key'), keyB.file);
    service = await startTestService({
      logLevel: 'info',
      homeservers: [
        { name: 'a.test', clientApi: whoami.url, signingKeyPath: join(dir, 'a.key') },
        { name: 'b.test', clientApi: whoami.url, signingKeyPath: join(dir, 'b.key') },
      ],
      federation: { serverOverrides: { 'a.test': keysA.url, 'b.test': keysB.url, 'x.test': peerX.url }, ipAllowlist: ['127.0.0.1/32'] },
    }, { logLines });
  });
  afterAll(async () => {
    await service.close();
    await Promise.all([whoami.close(), keysA.close(), keysB.close(), peerX.close()]);
  });

  const download = async (host: string, token: string, id: string) => {
    const res = await rawRequest(`${service.url}/_matrix/client/v1/media/download/x.test/${id}`, { headers: { Host: host, Authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('remote media');
  };
  const refusedFor = (origin: string) => peerX.requests.filter((r) => r.authorization.some((h) => h.includes(`origin="${origin}"`)) && r.verdict?.ok === false);

  test('the homeserver publishing our key in /v2/server: zero refused requests, from the very first', async () => {
    await download('a.test', 'tok-a', 'shared');
    expect(refusedFor('a.test')).toEqual([]);
    expect(peerX.requests.filter((r) => r.verdict?.origin === 'a.test').map((r) => r.verdict!.scheme)).toEqual(['X-Matrix']);
  });

  test('the other homeserver (MSC4100 endpoint only) is refused once and downgrades, independently', async () => {
    await download('b.test', 'tok-b', 'other');
    expect(refusedFor('b.test')).toHaveLength(1);
    expect(refusedFor('a.test')).toEqual([]);
  });

  test('the start-up log says which scheme each homeserver uses and why', () => {
    const chosen = logLines.map((l) => JSON.parse(l) as Record<string, string>).filter((l) => l.msg === 'outbound auth scheme');
    expect(chosen.map((l) => [l.homeserver, l.scheme]).sort()).toEqual([['a.test', 'x-matrix'], ['b.test', 'scoped-first']]);
    expect(chosen.find((l) => l.homeserver === 'a.test')!.reason).toBe(`${keyA.keyId} is in /_matrix/key/v2/server (not with m.requests at /_matrix/key/unstable/org.matrix.msc4100/server)`);
  });
});
