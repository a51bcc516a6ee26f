// Remote answers whose handling is easy to get subtly wrong: a media part's declared length (refused before
// any byte is read) and the origin's M_NOT_YET_UPLOADED (passed on, never failure-cached).
import { generateSynapseKey, type SynapseKey } from '../helpers/keys.js';
import { startRemoteHomeserver, type RemoteHomeserver } from '../helpers/remote-homeserver.js';
import { startRepoUnderTest, TEST_TOKEN, type RepoUnderTest } from '../helpers/service-under-test.js';
import { startStandInHomeserver, type StandInHomeserver } from '../helpers/stand-in-homeserver.js';
import { describeWithPython } from '../helpers/python-available.js';

const TENANT = 'tenant.test';
const REMOTE = 'remote.test';
const MiB = 1024 * 1024;
const download = (id: string) => `/_matrix/client/v1/media/download/${REMOTE}/${id}`;

let key: SynapseKey;
let remote: RemoteHomeserver;
let whoami: StandInHomeserver;
let repo: RepoUnderTest;

beforeAll(async () => {
  key = await generateSynapseKey('tenant1');
  remote = await startRemoteHomeserver({ serverName: REMOTE, trustedKeys: { [TENANT]: { [key.keyId]: key.publicKey } } });
  whoami = await startStandInHomeserver({ [TEST_TOKEN]: { userId: '@alice:tenant.test' } });
  repo = await startRepoUnderTest({
    tenant: TENANT, key, whoamiUrl: whoami.url,
    // Failures are cached for a minute: anything the test sees twice was not taken from that cache.
    federation: { serverOverrides: { [REMOTE]: remote.url }, ipAllowlist: ['127.0.0.1/32'], remoteMaxBytes: MiB, failureCacheMs: 60_000 },
  });
});

afterAll(async () => {
  await repo.close();
  await Promise.all([remote.close(), whoami.close()]);
});

describeWithPython('remote answers', () => {
  test('a media part declaring a length over the limit: 502 M_TOO_LARGE without reading a byte of it', async () => {
    // The origin sends the part's headers and then nothing: reading the media would stall, never give M_TOO_LARGE.
    remote.media.set('huge-part', { kind: 'declared-part', declaredLength: MiB + 1 });
    const response = await repo.get(download('huge-part'));
    expect([response.status, response.json().errcode]).toEqual([502, 'M_TOO_LARGE']);
    await repo.service.services.remoteMedia.settled();
    const state = await repo.inspect();
    expect([state.media, state.staged, state.spooled]).toEqual([0, [], []]);
  });

  test('M_NOT_YET_UPLOADED from the origin is passed on and not remembered: the next request asks again', async () => {
    remote.media.set('nyu', { kind: 'error', status: 504, body: { errcode: 'M_NOT_YET_UPLOADED', error: 'not yet' } });
    const first = await repo.get(download('nyu'));
    expect([first.status, first.json().errcode]).toEqual([504, 'M_NOT_YET_UPLOADED']);
    await repo.service.services.remoteMedia.settled();
    remote.media.set('nyu', { kind: 'multipart', bytes: Buffer.from('uploaded now') });
    const second = await repo.get(download('nyu'));
    expect([second.status, second.body.toString()]).toEqual([200, 'uploaded now']);
    expect(remote.requestsFor('/_matrix/federation/v1/media/download/nyu')).toHaveLength(2);
  });
});
