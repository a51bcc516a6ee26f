// kill -9 of the built service in the middle of an upload and of a remote fetch, each leaving a half-written
// staging file; the restart removes it at once (its writer is provably dead), the client gets its media on
// retry, and `storage check` finds nothing wrong: every row's blob right, no orphan, no staging, no stale lock.
import { request } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crashableService, until, type CrashableService } from '../helpers/crashable-service.js';
import { generateSynapseKey } from '../helpers/keys.js';
import { patternBytes } from '../helpers/media-fixtures.js';
import { describeWithPython } from '../helpers/python-available.js';
import { rawRequest } from '../helpers/raw-http.js';
import { startRemoteHomeserver, type RemoteHomeserver } from '../helpers/remote-homeserver.js';

const TOKEN = 'crash-test-token-0123456789';
const HS = 'hs.example';
const REMOTE = 'remote.test';

describeWithPython('kill -9 mid-write, restart', () => {
  let remote: RemoteHomeserver;
  let service: CrashableService;

  beforeAll(async () => {
    const key = await generateSynapseKey('k1');
    remote = await startRemoteHomeserver({ serverName: REMOTE, trustedKeys: { [HS]: { [key.keyId]: key.publicKey } } });
    service = await crashableService('crash-safety-', (dir) => {
      writeFileSync(join(dir, 'tokens'), `${TOKEN} @bot:${HS}\n`);
      writeFileSync(join(dir, 'hs.key'), key.file);
      return {
        homeservers: [{ name: HS, clientApi: 'http://127.0.0.1:1', staticAccessTokens: { file: join(dir, 'tokens') }, signingKeyPath: join(dir, 'hs.key') }],
        federation: { serverOverrides: { [REMOTE]: remote.url }, ipAllowlist: ['127.0.0.1/32'], failureCacheMs: 0 },
      };
    });
  }, 180_000);
  afterAll(async () => {
    await service.close();
    await remote.close();
  });

  const auth = { Host: HS, Authorization: `Bearer ${TOKEN}` };

  async function uploadWhole(bytes: Buffer): Promise<string> {
    const answer = await rawRequest(`${service.url}/_matrix/media/v3/upload`, { method: 'POST', headers: { ...auth, 'Content-Type': 'application/octet-stream' }, body: bytes });
    expect(answer.status).toBe(200);
    return String(answer.json().content_uri);
  }

  test('an upload killed mid-body: its .part is gone after the restart and the retry stores it', async () => {
    await service.start();
    const before = service.stagedFiles();
    const bytes = patternBytes(8 * 1024 * 1024, 3);
    // Half the body, then the client waits: the service is writing the rest to its staging file.
    const upload = request(`${service.url}/_matrix/media/v3/upload`, {
      method: 'POST', headers: { ...auth, 'Content-Type': 'application/octet-stream', 'Content-Length': String(bytes.length) },
    });
    upload.on('error', () => undefined);
    upload.write(bytes.subarray(0, bytes.length / 2));
    await until(() => service.stagedFiles().some((name) => !before.includes(name)), 'the staging file');
    await service.kill();

    await service.start();
    expect(service.stagedFiles()).toEqual([]);
    const uri = await uploadWhole(bytes);
    const back = await rawRequest(`${service.url}/_matrix/client/v1/media/download/${uri.slice('mxc://'.length)}`, { headers: auth });
    expect(back.status).toBe(200);
    expect(back.body.equals(bytes)).toBe(true);
  }, 180_000);

  test('a remote fetch killed mid-body: its .part and lock are gone after the restart and the retry fetches it', async () => {
    const bytes = patternBytes(4 * 1024 * 1024, 5);
    remote.media.set('stalled', { kind: 'stall', bytes });
    const path = `/_matrix/client/v1/media/download/${REMOTE}/stalled`;
    const before = service.stagedFiles();
    const first = rawRequest(`${service.url}${path}`, { headers: auth, allowIncomplete: true }).catch(() => undefined);
    await until(() => service.stagedFiles().some((name) => !before.includes(name)), 'the staging file');
    await service.kill();
    await first;

    await service.start();
    expect(service.stagedFiles()).toEqual([]);
    remote.media.set('stalled', { kind: 'multipart', bytes });
    const retry = await rawRequest(`${service.url}${path}`, { headers: auth });
    expect(retry.status).toBe(200);
    expect(retry.body.equals(bytes)).toBe(true);
  }, 180_000);

  test('storage check after the crashes: clean', async () => {
    await service.stop();
    const check = await service.storage('check');
    expect(check.out).toBe('checked 2 blobs referenced by rows (size and sha256), 2 stored blobs, staging and fetch locks: 0 problems\n');
    expect(check.code).toBe(0);
  }, 180_000);
});
