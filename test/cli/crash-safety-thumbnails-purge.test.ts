// kill -9 of the built service while it renders a thumbnail and halfway through an admin purge of many
// media. After the restart `storage check` is clean at once: the thumbnail left nothing, and the blobs of
// the rows the purge had already deleted are gone while every row not yet purged keeps its blob. The
// purge run again finishes the job, and bytes another user's media shares are never deleted.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { crashableService, cpuMs, until, type CrashableService } from '../helpers/crashable-service.js';
import { blobFilesIn, patternBytes, sha256Hex } from '../helpers/media-fixtures.js';
import { rawRequest, type RawResponse } from '../helpers/raw-http.js';

const HS = 'hs.example';
const TOKEN = 'crash-thumbnail-token-0123456789';
const BULK_TOKEN = 'crash-bulk-token-0123456789';
const ADMIN_SECRET = 'crash-admin-secret-0123456789';
// Three purge batches of 200: the kill lands while the first releases its blobs, so rows of the others are left.
const BULK_MEDIA = 600;
// Decoding 196 megapixels of PNG costs the service well over the CPU time the test waits for before the kill.
const SIDE = 14_000;

// Each start of the embedded database takes over a minute on a loaded 2-core machine: hence the long timeouts.
describe('kill -9 mid-thumbnail and mid-purge, restart', () => {
  let service: CrashableService;
  let bigPng: Buffer;

  beforeAll(async () => {
    service = await crashableService('crash-thumbnails-purge-', (dir) => {
      writeFileSync(join(dir, 'tokens'), `${TOKEN} @bot:${HS}\n${BULK_TOKEN} @bulk:${HS}\n`);
      return {
        homeservers: [{ name: HS, clientApi: 'http://127.0.0.1:1', staticAccessTokens: { file: join(dir, 'tokens') } }],
        sharedSecretAuth: { token: ADMIN_SECRET },
        admin: { syncPurgeLimit: 10 * BULK_MEDIA },
        media: { thumbnails: { maxPixels: 2 * SIDE * SIDE } },
      };
    });
    bigPng = await sharp({ create: { width: SIDE, height: SIDE, channels: 3, background: { r: 40, g: 90, b: 160 } } }).png().toBuffer();
  }, 180_000);
  afterAll(() => service.close());

  const blobs = () => blobFilesIn(join(service.dir, 'media'));
  const blobExists = (sha256: string) => existsSync(join(service.dir, 'media', sha256.slice(0, 2), sha256.slice(2, 4), sha256));

  async function upload(bytes: Buffer, contentType: string, token = TOKEN): Promise<string> {
    const answer = await rawRequest(`${service.url}/_matrix/media/v3/upload`, {
      method: 'POST', headers: { Host: HS, Authorization: `Bearer ${token}`, 'Content-Type': contentType }, body: bytes,
    });
    expect(answer.status).toBe(200);
    return String(answer.json().content_uri).slice('mxc://'.length);
  }

  const thumbnail = (media: string) => rawRequest(`${service.url}/_matrix/client/v1/media/thumbnail/${media}?width=800&height=600&method=scale`, {
    headers: { Host: HS, Authorization: `Bearer ${TOKEN}` }, allowIncomplete: true,
  });

  const purgeBulk = (query = ''): Promise<RawResponse> => rawRequest(`${service.url}/_matrix/media/unstable/admin/purge/user/@bulk:${HS}${query}`, {
    method: 'POST', headers: { Host: HS, Authorization: `Bearer ${ADMIN_SECRET}` }, allowIncomplete: true,
  });

  async function checkClean(): Promise<{ referenced: number; stored: number }> {
    await service.stop();
    const check = await service.storage('check');
    const summary = /^checked (\d+) blobs referenced by rows \(size and sha256\), (\d+) stored blobs, staging and fetch locks: 0 problems\n$/.exec(check.out);
    expect([check.code, summary ? 'clean' : check.out]).toEqual([0, 'clean']);
    return { referenced: Number(summary![1]), stored: Number(summary![2]) };
  }

  test('a thumbnail killed mid-render: nothing of it is left after the restart, and the retry renders it', async () => {
    await service.start();
    // libvips loads with the first thumbnail: a small one first, so that the CPU time waited for below is the big render's.
    const small = await upload(await sharp({ create: { width: 1000, height: 1000, channels: 3, background: '#808080' } }).png().toBuffer(), 'image/png');
    expect((await thumbnail(small)).status).toBe(200);
    const big = await upload(bigPng, 'image/png');
    const before = blobs();
    const cpuBefore = cpuMs(service.pid);
    let answered = false;
    const first = thumbnail(big).then(() => (answered = true), () => undefined);
    await until(() => cpuMs(service.pid) - cpuBefore >= 200, 'the service to be rendering', 5);
    expect(answered).toBe(false);
    await service.kill();
    await first;

    await service.start();
    expect(service.stagedFiles()).toEqual([]);
    expect(blobs()).toEqual(before);
    const retry = await thumbnail(big);
    expect(retry.status).toBe(200);
    expect(retry.headers['content-type']).toBe('image/png');
    expect(await sharp(retry.body).metadata()).toMatchObject({ format: 'png', width: 600, height: 600 });
    expect(blobs()).toHaveLength(before.length + 1);
    // Two sources and their two thumbnails.
    expect(await checkClean()).toEqual({ referenced: 4, stored: 4 });
  }, 420_000);

  test('a purge killed midway: the purged rows\' blobs are released at start-up, the rest stay, and the purge run again finishes', async () => {
    await service.start();
    const others = blobs().length;
    const bulk = Array.from({ length: BULK_MEDIA }, (_, i) => patternBytes(2048, 1000 + i));
    const shas = bulk.map((bytes) => sha256Hex(bytes));
    for (let i = 0; i < bulk.length; i += 10) {
      await Promise.all(bulk.slice(i, i + 10).map((bytes) => upload(bytes, 'application/octet-stream', BULK_TOKEN)));
    }
    // Another user's media with the same bytes as one of the purged user's: its blob must outlive the purge.
    const shared = await upload(bulk[BULK_MEDIA - 1]!, 'application/octet-stream');
    expect(blobs()).toHaveLength(others + BULK_MEDIA);

    const purge = purgeBulk().catch(() => undefined);
    await until(() => shas.some((sha256) => !blobExists(sha256)), 'the purge to release a blob', 2);
    await service.kill();
    await purge;

    await service.start();
    const left = (await purgeBulk('?dry_run=true')).json();
    expect(left.count).toBeGreaterThan(0);
    expect(left.count).toBeLessThan(BULK_MEDIA);
    // Clean without a sweep: what the dead purge had listed for release is gone, every row left has its blob.
    const afterCrash = await checkClean();
    expect(afterCrash.stored).toBe(afterCrash.referenced);
    expect(afterCrash.stored).toBeGreaterThanOrEqual(others + Number(left.count));

    await service.start();
    const again = (await purgeBulk()).json();
    expect(again).toMatchObject({ purged: true, count: left.count });
    expect((await purgeBulk('?dry_run=true')).json()).toMatchObject({ count: 0 });
    const kept = await rawRequest(`${service.url}/_matrix/client/v1/media/download/${shared}`, { headers: { Host: HS, Authorization: `Bearer ${TOKEN}` } });
    expect(kept.status).toBe(200);
    expect(kept.body.equals(bulk[BULK_MEDIA - 1]!)).toBe(true);
    expect(shas.filter(blobExists)).toEqual([shas[BULK_MEDIA - 1]]);
    expect(await checkClean()).toEqual({ referenced: others + 1, stored: others + 1 });
  }, 600_000);
});
