// Admin actions seen across instances sharing one database and datastore: the acting instance stops
// serving at once, another within cacheInvalidationPollMs (long before its cached rows expire); a purge while the same media is streaming lets
// the download finish intact, and later requests get 404.
import { request } from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Database } from '../../src/db/database.js';
import { adminCall, ALICE, AMY, downloadAs, startAdminBed, uploadAs, type AdminBed } from '../helpers/admin-service.js';
import { openTwoDatabases } from '../helpers/database.js';
import { blobFilesIn, patternBytes, sha256Hex } from '../helpers/media-fixtures.js';

const POLL_MS = 150;
// Far longer than any wait below: only the published invalidation can make the other instance see a change.
const TTL_MS = 60_000;
let db: Database;
let second: Database;
let one: AdminBed;
let two: AdminBed;
const storage = mkdtempSync(join(tmpdir(), 'media-repo-shared-'));

beforeAll(async () => {
  // On PostgreSQL each instance has its own pool; the embedded PGlite (one connection) is shared, closed once.
  [db, second] = await openTwoDatabases();
  const raw = { datastores: [{ id: 'default', type: 'file', forKinds: ['all'], opts: { path: storage } }], admin: { recordCacheTtlMs: TTL_MS }, cacheInvalidationPollMs: POLL_MS };
  one = await startAdminBed({ db, raw });
  two = await startAdminBed({ db: second, raw });
});

afterAll(async () => {
  await two.close();
  await one.close();
});

/** Milliseconds until `check` holds, polling every 25 ms, failing after `limitMs`. */
async function timeUntil(check: () => Promise<boolean>, limitMs: number): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > limitMs) throw new Error(`not within ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return Date.now() - started;
}

test('a quarantine is seen at once where it was made and within one invalidation poll on the other instance', async () => {
  const { serverName, mediaId } = await uploadAs(one.service, ALICE, 'seen by both');
  // Both instances now hold the record in their caches.
  expect((await downloadAs(one.service, ALICE, serverName, mediaId)).status).toBe(200);
  expect((await downloadAs(two.service, ALICE, serverName, mediaId)).status).toBe(200);
  expect((await adminCall(one.service, 'POST', `/quarantine/${serverName}/${mediaId}`, AMY)).status).toBe(200);
  expect((await downloadAs(one.service, ALICE, serverName, mediaId)).status).toBe(404);
  await timeUntil(async () => (await downloadAs(two.service, ALICE, serverName, mediaId)).status === 404, POLL_MS + 2000);
  expect((await adminCall(two.service, 'POST', `/unquarantine/${serverName}/${mediaId}`, AMY)).status).toBe(200);
  await timeUntil(async () => (await downloadAs(one.service, ALICE, serverName, mediaId)).status === 200, POLL_MS + 2000);
});

test('a purge on one instance: the other stops serving within one poll, and the bytes are gone', async () => {
  const { serverName, mediaId } = await uploadAs(one.service, ALICE, 'purged everywhere');
  expect((await downloadAs(two.service, ALICE, serverName, mediaId)).status).toBe(200);
  expect((await adminCall(one.service, 'POST', `/purge/${serverName}/${mediaId}`, AMY)).json()).toMatchObject({ count: 1 });
  expect(blobFilesIn(storage)).not.toContain(sha256Hex('purged everywhere'));
  // Before its next poll the other instance may still serve its cached record (and a small blob from memory).
  await timeUntil(async () => (await downloadAs(two.service, ALICE, serverName, mediaId)).status === 404, POLL_MS + 2000);
  expect((await downloadAs(two.service, ALICE, serverName, mediaId)).json().errcode).toBe('M_NOT_FOUND');
});

test('a purge while the same media is streaming: the download completes intact, then the media is gone', async () => {
  const bytes = patternBytes(8 * 1024 * 1024, 7);
  const { serverName, mediaId } = await uploadAs(one.service, ALICE, bytes);
  const url = new URL(`${two.service.url}/_matrix/client/v1/media/download/${serverName}/${mediaId}`);
  const received: Buffer[] = [];
  let resume!: () => void;
  const finished = new Promise<{ complete: boolean }>((resolve, reject) => {
    const req = request(url, { headers: { host: 'a.example', authorization: `Bearer ${ALICE}` }, agent: false }, (res) => {
      expect(res.statusCode).toBe(200);
      res.once('data', (chunk: Buffer) => {
        received.push(chunk);
        res.pause();
        resume = () => {
          res.on('data', (c: Buffer) => received.push(c));
          res.resume();
        };
        purgeNow();
      });
      res.on('end', () => resolve({ complete: true }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
  let purgeNow!: () => void;
  const purged = new Promise<void>((resolve) => {
    purgeNow = () => {
      void adminCall(one.service, 'POST', `/purge/${serverName}/${mediaId}`, AMY).then((res) => {
        expect(res.json()).toMatchObject({ purged: true, count: 1 });
        resolve();
      });
    };
  });
  await purged;
  expect(blobFilesIn(storage)).not.toContain(sha256Hex(bytes));
  resume();
  expect(await finished).toEqual({ complete: true });
  expect(Buffer.concat(received).equals(bytes)).toBe(true);
  for (const service of [one.service, two.service]) {
    const res = await downloadAs(service, ALICE, serverName, mediaId);
    expect([res.status, res.json().errcode]).toEqual([404, 'M_NOT_FOUND']);
  }
});
