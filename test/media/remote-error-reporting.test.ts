// What a failed remote fetch tells whom: the client a generic Matrix error (never what a name resolved to or
// the IP filter's verdict), the log the detail at warn without a stack trace, and a Location part that cannot
// be fetched fails that media only, never backing off its origin's other media.
import { startDnsServer, type DnsServer } from '../helpers/dns-server.js';
import { generateSynapseKey } from '../helpers/keys.js';
import { patternBytes } from '../helpers/media-fixtures.js';
import { describeWithPython } from '../helpers/python-available.js';
import { startRemoteHomeserver, type RemoteHomeserver } from '../helpers/remote-homeserver.js';
import { startRepoUnderTest, TEST_TOKEN, type RepoUnderTest } from '../helpers/service-under-test.js';
import { startStandInHomeserver, type StandInHomeserver } from '../helpers/stand-in-homeserver.js';

const TENANT = 'tenant.test';
const REMOTE = 'remote.test';
const download = (server: string, id: string) => `/_matrix/client/v1/media/download/${server}/${id}`;

let dns: DnsServer;
let remote: RemoteHomeserver;
let whoami: StandInHomeserver;
let repo: RepoUnderTest;

beforeAll(async () => {
  const key = await generateSynapseKey('tenant1');
  remote = await startRemoteHomeserver({ serverName: REMOTE, trustedKeys: { [TENANT]: { [key.keyId]: key.publicKey } } });
  // ssrf.test points into loopback, which the IP filter blocks (the override for remote.test is trusted).
  dns = await startDnsServer({ 'ssrf.test': [{ type: 'A', data: '127.0.0.1' }] });
  whoami = await startStandInHomeserver({ [TEST_TOKEN]: { userId: '@alice:tenant.test' } });
  repo = await startRepoUnderTest({
    tenant: TENANT, key, whoamiUrl: whoami.url,
    federation: { serverOverrides: { [REMOTE]: remote.url }, dnsServers: [dns.address], connectTimeoutMs: 1000, requestTimeoutMs: 2000, failureCacheMs: 60_000, remoteMaxBytes: 1 << 20 },
  });
}, 240_000);
afterAll(async () => {
  await repo.close();
  await Promise.all([remote.close(), dns.close(), whoami.close()]);
});

const parsedLines = () => repo.logLines.map((line) => JSON.parse(line) as { level: number; msg: string; err?: unknown; stack?: unknown });
const linesMentioning = (text: string) => repo.logLines.filter((line) => line.includes(text)).map((line) => JSON.parse(line) as { level: number });

describeWithPython('remote fetch failures', () => {
  test('a Location into a blocked range: the client is not told what the name resolved to; the log is', async () => {
    remote.media.set('to-ssrf', { kind: 'location', location: `http://ssrf.test:${remote.port}/secret` });
    const res = await repo.get(download(REMOTE, 'to-ssrf'));
    expect(res.status).toBe(502);
    expect(res.json().errcode).toBe('M_UNKNOWN');
    expect(String(res.json().error)).not.toMatch(/127\.0\.0\.1|blocked|ssrf\.test|refusing/);
    const logged = linesMentioning('127.0.0.1 is in a blocked IP range');
    expect(logged.length).toBeGreaterThan(0);
    expect(logged.every((line) => line.level === 30 || line.level === 40)).toBe(true);
  });

  test('a Location that cannot be fetched fails that media only: the origin\'s other media still come', async () => {
    remote.media.set('to-nowhere', { kind: 'location', location: `http://nowhere.test:${remote.port}/gone` });
    expect((await repo.get(download(REMOTE, 'to-nowhere'))).status).toBe(502);
    const bytes = patternBytes(4096, 3);
    remote.media.set('fine', { kind: 'multipart', bytes });
    const fine = await repo.get(download(REMOTE, 'fine'));
    expect(fine.status).toBe(200);
    expect(fine.body.equals(bytes)).toBe(true);
  });

  test('a remote server whose name does not resolve: 502 for the client, one warning without a stack in the log', async () => {
    const res = await repo.get(download('nxdomain.test', 'abc'));
    expect(res.status).toBe(502);
    expect(String(res.json().error)).not.toMatch(/ENOTFOUND|8448/);
    const about = parsedLines().filter((line) => JSON.stringify(line).includes('nxdomain.test'));
    expect(about.map((line) => line.level)).toContain(40);
    expect(about.filter((line) => line.level >= 50)).toEqual([]);
    expect(about.filter((line) => JSON.stringify(line).includes('    at '))).toEqual([]);
  });

  test('cut off at remoteMaxBytes: the next client is told so from the failure cache; the log has one warning why', async () => {
    remote.media.set('too-big', { kind: 'oversized', size: 2 << 20, declareLength: false });
    const first = await repo.get(download(REMOTE, 'too-big'));
    expect(first.complete && first.status === 200).toBe(false);
    await repo.service.services.remoteMedia.settled();
    const again = await repo.get(download(REMOTE, 'too-big'));
    expect([again.status, again.json()]).toEqual([502, { errcode: 'M_TOO_LARGE', error: 'The remote content is too large' }]);
    expect(remote.requestsFor('/_matrix/federation/v1/media/download/too-big')).toHaveLength(1);
    const warnings = parsedLines().filter((line) => line.msg === 'remote media fetch failed' && JSON.stringify(line).includes('too-big'));
    expect(warnings).toEqual([expect.objectContaining({ level: 40, serverName: REMOTE, mediaId: 'too-big', err: 'the media is larger than federation.remoteMaxBytes' })]);
  });

  test.each([
    ['is not on its origin (404)', { kind: 'error' as const, status: 404, body: { errcode: 'M_NOT_FOUND', error: 'no' } }, 404],
    ['is not yet uploaded there', { kind: 'error' as const, status: 504, body: { errcode: 'M_NOT_YET_UPLOADED', error: 'wait' } }, 504],
  ])('media that %s: no warning in the log', async (_, behaviour, status) => {
    const id = `quiet-${status}`;
    remote.media.set(id, behaviour);
    expect((await repo.get(download(REMOTE, id))).status).toBe(status);
    await repo.service.services.remoteMedia.settled();
    expect(parsedLines().filter((line) => line.msg === 'remote media fetch failed' && JSON.stringify(line).includes(id))).toEqual([]);
  });
});
