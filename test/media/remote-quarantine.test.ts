// Quarantined remote media is never fetched again from its origin: not the media, not its thumbnails,
// not after its cached copy is purged; its flag outlives the purge.
import { startStandInHomeserver, type StandInHomeserver } from '../helpers/stand-in-homeserver.js';
import { generateSynapseKey } from '../helpers/keys.js';
import { patternBytes, sha256Hex } from '../helpers/media-fixtures.js';
import { startRemoteHomeserver, type RemoteHomeserver } from '../helpers/remote-homeserver.js';
import { startRepoUnderTest, TEST_TOKEN, type RepoUnderTest } from '../helpers/service-under-test.js';

const TENANT = 'tenant.test';
const REMOTE = 'remote.test';
const PROVIDER = { actor: 'test', homeserver: null };
let remote: RemoteHomeserver;
let whoami: StandInHomeserver;
let repo: RepoUnderTest;

beforeAll(async () => {
  const key = await generateSynapseKey('tenant1');
  remote = await startRemoteHomeserver({ serverName: REMOTE, trustedKeys: { [TENANT]: { [key.keyId]: key.publicKey } } });
  whoami = await startStandInHomeserver({ [TEST_TOKEN]: { userId: '@alice:tenant.test' } });
  repo = await startRepoUnderTest({
    tenant: TENANT, key, whoamiUrl: whoami.url,
    federation: { serverOverrides: { [REMOTE]: remote.url }, ipAllowlist: ['127.0.0.1/32'], failureCacheMs: 0 },
  });
}, 90_000); // key generation in the shared Python worker queues behind other suites under load

afterAll(async () => {
  await repo?.close();
  await Promise.all([remote?.close(), whoami?.close()]);
});

test('cached, quarantined, purged: never asked of the origin again, on downloads or thumbnails', async () => {
  const bytes = patternBytes(4096, 3);
  remote.media.set('abuse', { kind: 'multipart', bytes, contentType: 'image/png', thumbnail: { bytes: patternBytes(100, 4), contentType: 'image/png' } });
  const download = `/_matrix/client/v1/media/download/${REMOTE}/abuse`;
  const thumbnail = `/_matrix/client/v1/media/thumbnail/${REMOTE}/abuse?width=32&height=32&method=crop`;
  expect((await repo.get(download)).status).toBe(200);
  await repo.service.services.remoteMedia.settled();
  const asked = remote.requests.length;

  const { quarantine, purges } = repo.service.services.admin;
  expect(await quarantine.quarantine({ kind: 'media', serverName: REMOTE, mediaId: 'abuse' }, PROVIDER)).toBe(1);
  // The legacy endpoint is frozen by default, and this media was cached after the freeze.
  const frozen = 'Not found: this media is only available through the authenticated media endpoints';
  for (const [path, error] of [[download, 'Media not found'], [thumbnail, 'Media not found'], [`/_matrix/media/v3/download/${REMOTE}/abuse`, frozen]]) {
    const res = await repo.get(path!);
    expect([path, res.status, res.json()]).toEqual([path, 404, { errcode: 'M_NOT_FOUND', error }]);
  }
  // Evidence kept until purged; then the bytes go and the flag stays.
  expect((await repo.inspect()).blobs.some((f) => f.endsWith(sha256Hex(bytes)))).toBe(true);
  expect(await purges.request({ kind: 'quarantined' }, PROVIDER, { dryRun: false, background: false })).toMatchObject({ count: 1 });
  expect((await repo.inspect()).blobs.some((f) => f.endsWith(sha256Hex(bytes)))).toBe(false);
  for (const path of [download, thumbnail]) expect((await repo.get(path)).status).toBe(404);
  expect(remote.requests.length).toBe(asked);

  // Media quarantined before it was ever fetched is never fetched either.
  remote.media.set('preempted', { kind: 'multipart', bytes });
  await quarantine.quarantine({ kind: 'media', serverName: REMOTE, mediaId: 'preempted' }, PROVIDER);
  expect((await repo.get(`/_matrix/client/v1/media/download/${REMOTE}/preempted`)).status).toBe(404);
  expect(remote.requests.length).toBe(asked);
  // Unquarantined, it is fetched as usual.
  await quarantine.unquarantine({ kind: 'media', serverName: REMOTE, mediaId: 'preempted' }, PROVIDER);
  expect((await repo.get(`/_matrix/client/v1/media/download/${REMOTE}/preempted`)).status).toBe(200);
  expect(remote.requests.length).toBeGreaterThan(asked);
});
