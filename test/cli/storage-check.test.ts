// `storage check` on a real database and datastore folder: clean when every row's blob is there with its
// size and sha256; each planted inconsistency is named and makes it fail; `storage sweep` removes what a
// crash leaves (unreferenced blobs, dead instances' staging and locks) and the rest stays reported.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { checkStorage, type Problem } from '../../src/cli/storage-check.js';
import { buildConfig } from '../../src/config/config.js';
import type { Database } from '../../src/db/database.js';
import { createLogger } from '../../src/log.js';
import { removeCrashLeftovers } from '../../src/media/crash-leftovers.js';
import { closeServices, openServices, type Services } from '../../src/service.js';
import { UNNAMED_STAGING_MS } from '../../src/storage/staging.js';
import { openTestDatabase } from '../helpers/database.js';

const HS = 'check.example';
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('storage check', () => {
  const dir = mkdtempSync(join(tmpdir(), 'storage-check-'));
  const media = join(dir, 'media');
  let db: Database;
  let services: Services;
  let n = 0;

  beforeAll(async () => {
    db = await openTestDatabase();
    const config = buildConfig({
      dataDir: dir, masterKey: randomBytes(32).toString('hex'), homeservers: [{ name: HS, clientApi: 'http://127.0.0.1:1' }],
      datastores: [{ id: 'default', type: 'file', forKinds: ['all'], opts: { path: media } }],
    }, join(dir, 'config.yaml'));
    services = await openServices(config, createLogger('silent'), db);
  });
  afterAll(async () => {
    // Closes the test database too.
    await closeServices(services);
  });

  async function check(quick = false): Promise<{ problems: Problem[]; summary: string; failed: boolean }> {
    let out = '';
    const failed = await checkStorage(services, { quick, json: true }, { stdout: { write: (t: string) => (out += t) }, stderr: { write: () => true } })
      .then(() => false, () => true);
    const { problems, summary } = JSON.parse(out) as { problems: Problem[]; summary: string };
    return { problems, summary, failed };
  }

  /** A stored upload with its row; `rowSize` overrides the size the row records. */
  async function upload(bytes: Buffer, rowSize?: number): Promise<string> {
    const blob = await services.datastores.get('default').writeStream(Readable.from([bytes]), { maxBytes: 1e6 });
    await services.media.insertMedia({ serverName: HS, mediaId: `m${n++}`, isRemote: false, userId: null, contentType: 'text/plain', uploadName: null }, blob);
    if (rowSize !== undefined) await services.db.knex('media').where({ sha256: blob.sha256 }).update({ size: rowSize });
    return blob.sha256;
  }

  const blobPath = (digest: string) => join(media, digest.slice(0, 2), digest.slice(2, 4), digest);

  test('clean: every row has its blob, nothing else is stored, staged or locked', async () => {
    await upload(randomBytes(3000));
    await upload(randomBytes(10));
    expect(await check()).toEqual({ problems: [], summary: 'checked 2 blobs referenced by rows (size and sha256), 2 stored blobs, staging and fetch locks: 0 problems', failed: false });
  });

  test('each planted inconsistency is named; sweep removes a crash\'s leftovers, the rest stays', async () => {
    const missing = sha256(Buffer.from('never stored'));
    await services.db.knex('media').insert({
      server_name: HS, media_id: 'missing', is_remote: false, content_type: 'text/plain', datastore_id: 'default', sha256: missing, size: 12, created_ts: 1, stored_ts: 1,
    });
    const wrongSize = await upload(randomBytes(100), 99);
    const corrupt = await upload(randomBytes(100));
    writeFileSync(blobPath(corrupt), randomBytes(100));
    const orphan = await services.datastores.get('default').writeStream(Readable.from([Buffer.from('no row')]), { maxBytes: 100 });
    await orphan.commit();
    const dead = randomUUID();
    const stagedName = `${dead}.${randomUUID()}.part`;
    writeFileSync(join(media, '.tmp', stagedName), 'half an upload');
    await services.db.knex('remote_fetches').insert({ fetch_key: 'download remote.example crashed', owner: `${dead}/f`, heartbeat_ts: Date.now() });
    // A live instance's staging and lock are not problems.
    writeFileSync(join(media, '.tmp', `${services.instances.id}.${randomUUID()}.part`), 'in progress');
    await services.db.knex('remote_fetches').insert({ fetch_key: 'download remote.example busy', owner: `${services.instances.id}/f`, heartbeat_ts: Date.now() });

    const found = await check();
    expect(found.failed).toBe(true);
    expect(found.problems).toEqual(expect.arrayContaining([
      { problem: 'missing', datastore: 'default', name: missing },
      { problem: 'wrong size', datastore: 'default', name: wrongSize, detail: 'rows say 99 bytes, stored 100' },
      { problem: 'wrong sha256', datastore: 'default', name: corrupt, detail: expect.stringMatching(/^stored bytes hash to [0-9a-f]{64}$/) },
      { problem: 'unreferenced', datastore: 'default', name: orphan.sha256 },
      { problem: 'abandoned staging', datastore: 'default', name: stagedName },
      { problem: 'stale lock', name: 'download remote.example crashed', detail: `held by ${dead}/f` },
    ]));
    expect(found.problems).toHaveLength(6);
    expect(found.summary).toMatch(/: 6 problems$/);
    // Presence only: the size and hash go unchecked.
    expect((await check(true)).problems.map((p) => p.problem).sort()).toEqual(['abandoned staging', 'missing', 'stale lock', 'unreferenced']);

    await services.blobs.sweepUnreferenced();
    const removed = await removeCrashLeftovers({ ...services, knex: services.db.knex }, UNNAMED_STAGING_MS);
    expect(removed.staging.get('default')).toEqual({ staged: 1, uploads: 0 });
    expect(removed.locks).toBe(1);
    expect((await check()).problems.map((p) => p.problem).sort()).toEqual(['missing', 'wrong sha256', 'wrong size']);
    expect(await services.db.knex('remote_fetches').pluck('fetch_key')).toEqual(['download remote.example busy']);
  });
});
