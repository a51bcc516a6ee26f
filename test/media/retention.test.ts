// Scheduled retention with an injected clock: remote media by last access (per the homeservers whose
// users fetched it), local media by age, quarantined media kept, bytes freed, one instance at a time.
import { Retention } from '../../src/media/retention.js';
import { createLogger } from '../../src/log.js';
import { ALICE, cacheRemote, CAROL, downloadAs, startAdminBed, uploadAs, type AdminBed } from '../helpers/admin-service.js';
import { blobFiles, sha256Hex } from '../helpers/media-fixtures.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2030, 0, 1);
let bed: AdminBed;

beforeAll(async () => {
  // a.example: remote media 7 days, local 30; b.example: the global 30 days for remote, no local retention.
  bed = await startAdminBed({ raw: { retention: { remoteMediaDays: 30 } } });
});
afterAll(() => bed.close());

function retention(now: () => number, owner = bed) {
  const { config, db } = owner.service.services;
  const homeservers = config.homeservers.map((hs) => (hs.name === 'a.example' ? { ...hs, retention: { remoteMediaDays: 7, localMediaDays: 30 } } : hs));
  return new Retention(db.knex, owner.service.services.jobs.purge, owner.service.services.admin.audit, config.retention, homeservers, createLogger('silent'), {
    leaseStaleMs: 60_000, now,
  });
}

test('purges what each homeserver\'s policy expires, keeps the rest and quarantined media, frees the bytes', async () => {
  const knex = bed.service.services.db.knex;
  const remote = { onlyA10: 'A, 10 days', both10: 'A+B, 10 days', both40: 'A+B, 40 days', none10: 'nobody, 10 days', quarantined: 'A, 100 days' };
  for (const [id, text] of Object.entries(remote)) await cacheRemote(bed.service, 'remote.test', id, text);
  for (const [token, id] of [[ALICE, 'onlyA10'], [ALICE, 'both10'], [CAROL, 'both10'], [ALICE, 'both40'], [CAROL, 'both40'], [ALICE, 'quarantined']] as const) {
    expect((await downloadAs(bed.service, token, 'remote.test', id)).status).toBe(200);
  }
  await bed.service.services.admin.accessTimes.flush();
  const age = (days: number) => NOW - days * DAY;
  for (const [id, days] of [['onlyA10', 10], ['both10', 10], ['both40', 40], ['none10', 10], ['quarantined', 100]] as const) {
    await knex('media').where({ server_name: 'remote.test', media_id: id }).update({ last_access_ts: age(days), stored_ts: age(days) });
  }
  await bed.service.services.admin.quarantine.quarantine({ kind: 'media', serverName: 'remote.test', mediaId: 'quarantined' }, { actor: 'test', homeserver: null });
  const oldA = await uploadAs(bed.service, ALICE, 'alice, 31 days');
  const newA = await uploadAs(bed.service, ALICE, 'alice, 29 days');
  const oldB = await uploadAs(bed.service, CAROL, 'carol, 400 days');
  for (const [m, days] of [[oldA, 31], [newA, 29], [oldB, 400]] as const) await knex('media').where({ media_id: m.mediaId }).update({ created_ts: age(days) });

  const outcome = await retention(() => NOW).runOnce();
  expect(outcome).toMatchObject({ remote: 2, local: 1 });
  const left = await knex('media').orderBy('media_id').pluck('media_id');
  expect(left).not.toContain('onlyA10');
  expect(left).not.toContain('both40');
  expect(left).toEqual(expect.arrayContaining(['both10', 'none10', 'quarantined', newA.mediaId, oldB.mediaId]));
  expect(left).not.toContain(oldA.mediaId);
  const files = await blobFiles(bed.service);
  expect(files).not.toContain(sha256Hex(remote.onlyA10));
  expect(files).not.toContain(sha256Hex('alice, 31 days'));
  expect(files).toContain(sha256Hex(remote.quarantined));
  const audit = await knex('admin_audit').where({ action: 'retention' }).first();
  expect(audit).toMatchObject({ actor: 'retention', count: 3 });

  // Time passes: ten more days and both10 (kept 30 days for b.example's users) is still there; at 31 it goes.
  expect(await retention(() => NOW + 10 * DAY).runOnce()).toMatchObject({ remote: 0 });
  expect(await retention(() => NOW + 21 * DAY).runOnce()).toMatchObject({ remote: 2 }); // both10, and none10 (global 30)
});

test('only one instance runs it: a live lease of another instance makes this one skip, a stale one is taken over', async () => {
  const knex = bed.service.services.db.knex;
  await cacheRemote(bed.service, 'remote.test', 'leased', 'leased bytes');
  await knex('media').where({ media_id: 'leased' }).update({ last_access_ts: NOW - 90 * DAY });
  await knex('job_leases').insert({ job: 'retention', owner: 'another instance', heartbeat_ts: NOW });
  expect(await retention(() => NOW + 1000).runOnce()).toBeUndefined();
  expect(await knex('media').where({ media_id: 'leased' }).first()).toBeDefined();
  expect(await retention(() => NOW + 61_000).runOnce()).toMatchObject({ remote: 1 });
  expect(await knex('job_leases').where({ job: 'retention' })).toEqual([]);
});
