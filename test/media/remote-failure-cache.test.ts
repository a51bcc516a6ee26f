// Remote fetches that failed, through the real client API: the failure is answered from the cache (in the
// database, for failureCacheMs) without asking the origin again, and an origin that timed out is backed off.
import { REAL_POSTGRES_URL } from '../helpers/database.js';
import { generateSynapseKey, type SynapseKey } from '../helpers/keys.js';
import { describeWithPython } from '../helpers/python-available.js';
import { startRemoteHomeserver, type RemoteHomeserver } from '../helpers/remote-homeserver.js';
import { startRepoUnderTest, TEST_TOKEN, type RepoUnderTest } from '../helpers/service-under-test.js';
import { startStandInHomeserver, type StandInHomeserver } from '../helpers/stand-in-homeserver.js';

const TENANT = 'tenant.test';
const REMOTE = 'remote.test';
const download = (id: string) => `/_matrix/client/v1/media/download/${REMOTE}/${id}`;

let key: SynapseKey;
let remote: RemoteHomeserver;
let legacyRemote: RemoteHomeserver;
let whoami: StandInHomeserver;
let cachingRepo: RepoUnderTest;

beforeAll(async () => {
  key = await generateSynapseKey('tenant1');
  const trustedKeys = { [TENANT]: { [key.keyId]: key.publicKey } };
  remote = await startRemoteHomeserver({ serverName: REMOTE, trustedKeys });
  legacyRemote = await startRemoteHomeserver({ serverName: 'synapse.test', trustedKeys, acceptScoped: false });
  whoami = await startStandInHomeserver({ [TEST_TOKEN]: { userId: '@alice:tenant.test' } });
  cachingRepo = await startRepoUnderTest({
    tenant: TENANT, key, whoamiUrl: whoami.url,
    federation: { serverOverrides: { [REMOTE]: remote.url, 'synapse.test': legacyRemote.url }, ipAllowlist: ['127.0.0.1/32'], requestTimeoutMs: 300, failureCacheMs: 1500 },
  });
});

afterAll(async () => {
  await cachingRepo.close();
  await Promise.all([remote.close(), legacyRemote.close(), whoami.close()]);
});

describeWithPython('failure cache and back-off', () => {
  test('a failure is answered from the cache until failureCacheMs has passed', async () => {
    remote.media.set('fc', { kind: 'error', status: 404, body: { errcode: 'M_NOT_FOUND', error: 'nope' } });
    expect((await cachingRepo.get(download('fc'))).status).toBe(404);
    remote.media.set('fc', { kind: 'multipart', bytes: Buffer.from('now it exists') });
    await new Promise((resolve) => setTimeout(resolve, 700));
    const cached = await cachingRepo.get(download('fc'));
    expect(cached.status).toBe(404);
    expect(remote.requestsFor('/_matrix/federation/v1/media/download/fc')).toHaveLength(1);
    // 1,600 ms after the failure: answering from the cache must not have extended it.
    await new Promise((resolve) => setTimeout(resolve, 900));
    const fresh = await cachingRepo.get(download('fc'));
    expect(fresh.status).toBe(200);
    expect(fresh.body.toString()).toBe('now it exists');
  });

  test('a request between the failure and its record joins the failed fetch, not a new one', async () => {
    remote.media.set('fr', { kind: 'error', status: 404, body: { errcode: 'M_NOT_FOUND', error: 'nope' } });
    // On PostgreSQL the record waits behind a lock held here; the embedded database runs queries in order anyway.
    const knex = cachingRepo.service.services.db.knex;
    const holder = REAL_POSTGRES_URL ? await knex.transaction() : undefined;
    await holder?.raw('LOCK TABLE remote_fetch_failures IN SHARE MODE');
    try {
      expect((await cachingRepo.get(download('fr'))).status).toBe(404);
      remote.media.set('fr', { kind: 'multipart', bytes: Buffer.from('now it exists') });
      expect((await cachingRepo.get(download('fr'))).status).toBe(404);
    } finally {
      await holder?.commit();
    }
    await cachingRepo.service.services.remoteMedia.settled();
    expect(remote.requestsFor('/_matrix/federation/v1/media/download/fr')).toHaveLength(1);
  });

  test('a destination that timed out is not contacted again for a while', async () => {
    legacyRemote.media.set('t1', { kind: 'slow', delayMs: 2000, bytes: Buffer.from('x') });
    legacyRemote.media.set('t2', { kind: 'multipart', bytes: Buffer.from('fine') });
    expect((await cachingRepo.get('/_matrix/client/v1/media/download/synapse.test/t1?timeout_ms=500')).status).toBe(504);
    await cachingRepo.service.services.remoteMedia.settled();
    const before = legacyRemote.requests.length;
    const backedOff = await cachingRepo.get('/_matrix/client/v1/media/download/synapse.test/t2');
    expect(backedOff.status).toBe(502);
    expect(String(backedOff.json().error)).toMatch(/not retrying/);
    expect(legacyRemote.requests.length).toBe(before);
  });
});
