// Who may use the admin API, and tenant isolation from every endpoint: an admin of one hosted homeserver
// never lists, quarantines or deletes anything of the other; every refusal is 403 M_FORBIDDEN and changes nothing.
import { adminCall, ALICE, AMY, BOB, cacheRemote, CAROL, downloadAs, ROOT, SHARED_SECRET, startAdminBed, uploadAs, type AdminBed } from '../helpers/admin-service.js';
import { blobFiles } from '../helpers/media-fixtures.js';
import { rawRequest } from '../helpers/raw-http.js';

let bed: AdminBed;
let a: { serverName: string; mediaId: string };
let b: { serverName: string; mediaId: string };
let bTask: number;

beforeAll(async () => {
  bed = await startAdminBed();
  a = await uploadAs(bed.service, ALICE, 'alice on a');
  b = await uploadAs(bed.service, CAROL, 'carol on b');
  // remote.test media: one fetched by a user of each homeserver, one by both.
  await cacheRemote(bed.service, 'remote.test', 'onlyA', 'fetched via a');
  await cacheRemote(bed.service, 'remote.test', 'onlyB', 'fetched via b');
  await cacheRemote(bed.service, 'remote.test', 'both', 'fetched via both');
  for (const [token, id] of [[ALICE, 'onlyA'], [CAROL, 'onlyB'], [ALICE, 'both'], [CAROL, 'both']] as const) {
    expect((await downloadAs(bed.service, token, 'remote.test', id)).status).toBe(200);
  }
  // Something of b's in the audit log, the task list and quarantine.
  expect((await adminCall(bed.service, 'POST', `/quarantine/${b.serverName}/${b.mediaId}`, BOB)).status).toBe(200);
  expect((await adminCall(bed.service, 'POST', `/unquarantine/${b.serverName}/${b.mediaId}`, BOB)).status).toBe(200);
  const task = await adminCall(bed.service, 'POST', '/purge/user/@nobody:b.example?background=true', BOB);
  expect(task.status).toBe(200);
  bTask = Number(task.json().task_id);
});

afterAll(() => bed.close());

async function state() {
  const knex = bed.service.services.db.knex;
  return {
    media: await knex('media').select('server_name', 'media_id').orderBy(['server_name', 'media_id']),
    quarantined: await knex('quarantined_media').select('server_name', 'media_id').orderBy(['server_name', 'media_id']),
    blobs: await blobFiles(bed.service),
  };
}

describe('who may act', () => {
  test('no token is 401; plain users, and a.example users calling through b.example, are refused and change nothing', async () => {
    const before = await state();
    const path = `/quarantine/${a.serverName}/${a.mediaId}`;
    const none = await rawRequest(`${bed.service.url}/_matrix/media/unstable/admin${path}`, { method: 'POST', headers: { host: 'a.example' } });
    expect(none.status).toBe(401);
    expect(none.json().errcode).toBe('M_MISSING_TOKEN');
    for (const token of [ALICE, CAROL]) {
      const res = await adminCall(bed.service, 'POST', path, token);
      expect(res.status).toBe(403);
      expect(res.json().errcode).toBe('M_FORBIDDEN');
    }
    // b.example's homeserver does not know a.example's admin token.
    expect((await adminCall(bed.service, 'POST', path, AMY, 'b.example')).status).toBe(401);
    expect(await state()).toEqual(before);
  });

  test('the shared secret and config-listed provider admins act on every homeserver', async () => {
    for (const [token, host] of [[SHARED_SECRET, 'a.example'], [SHARED_SECRET, 'b.example'], [ROOT, 'a.example']] as const) {
      const res = await adminCall(bed.service, 'GET', `/usage/${b.serverName}`, token, host);
      expect(res.status).toBe(200);
      expect(res.json().raw_counts).toMatchObject({ media: 1 });
    }
  });

  test('even the shared secret reaches the admin API only through a hosted homeserver\'s address', async () => {
    const res = await adminCall(bed.service, 'GET', `/usage/${b.serverName}`, SHARED_SECRET, 'unknown.example');
    expect([res.status, res.json().errcode]).toEqual([404, 'M_NOT_FOUND']);
  });

  test('a homeserver admin per its Synapse admin API is asked once, with the configured token, then cached', async () => {
    const checks = bed.hsB.adminChecks;
    expect((await adminCall(bed.service, 'GET', `/usage/${b.serverName}`, BOB)).status).toBe(200);
    expect((await adminCall(bed.service, 'GET', `/usage/${b.serverName}`, BOB)).status).toBe(200);
    expect(bed.hsB.adminChecks).toBe(checks);
    expect(bed.hsB.lastAdminCheckToken).toBe('b-admin-api-token');
    // Carol is no admin per Synapse: refused; that answer is cached too.
    expect((await adminCall(bed.service, 'GET', `/usage/${b.serverName}`, CAROL)).status).toBe(403);
    expect((await adminCall(bed.service, 'GET', `/usage/${b.serverName}`, CAROL)).status).toBe(403);
    expect(bed.hsB.adminChecks).toBeLessThanOrEqual(checks + 1);
  });

  test('the audit log records user IDs and labels, never a token', async () => {
    await adminCall(bed.service, 'POST', `/purge/${a.serverName}/none?dry_run=true`, SHARED_SECRET);
    const rows = await bed.service.services.db.knex('admin_audit').select('*');
    const text = JSON.stringify(rows);
    for (const token of [SHARED_SECRET, ROOT, AMY, BOB, 'b-admin-api-token']) expect(text).not.toContain(token);
    expect(rows.map((r: { actor: string }) => r.actor)).toContain('@bob:b.example');
  });
});

describe('tenant isolation from every endpoint', () => {
  // [method, path] an admin of `from` must be refused on: all name the other homeserver's media, users or usage.
  const refusals = (other: { serverName: string; mediaId: string }, otherUser: string, otherOnlyRemote: string): Array<[string, string]> => [
    ['POST', `/quarantine/${other.serverName}/${other.mediaId}`],
    ['POST', `/quarantine/user/${otherUser}`],
    ['POST', `/quarantine/server/${other.serverName}`],
    ['POST', `/quarantine/remote.test/${otherOnlyRemote}`],
    ['POST', `/unquarantine/${other.serverName}/${other.mediaId}`],
    ['POST', `/unquarantine/user/${otherUser}`],
    ['POST', `/unquarantine/server/${other.serverName}`],
    ['POST', `/unquarantine/remote.test/${otherOnlyRemote}`],
    ['POST', `/purge/${other.serverName}/${other.mediaId}`],
    ['POST', `/purge/${other.serverName}/${other.mediaId}?dry_run=true`],
    ['POST', `/purge/remote.test/${otherOnlyRemote}`],
    ['POST', `/purge/user/${otherUser}`],
    ['POST', `/purge/user/${otherUser}?background=true`],
    ['POST', `/purge/server/${other.serverName}`],
    ['POST', `/purge/remote?before_ts=${Date.now() + 60_000}`],
    ['POST', `/purge/old?before_ts=${Date.now() + 60_000}&include_local=true`],
    ['GET', `/usage/${other.serverName}`],
    ['GET', `/usage/${other.serverName}/users`],
    ['GET', `/usage/${other.serverName}/users-stats`],
    ['GET', `/users/${otherUser}/media`],
  ];

  for (const [name, token, otherName] of [['a.example', AMY, 'b'], ['b.example', BOB, 'a']] as const) {
    test(`an admin of ${name} is refused everything of the other homeserver, and nothing changes`, async () => {
      const other = otherName === 'b' ? b : a;
      const otherUser = otherName === 'b' ? '@carol:b.example' : '@alice:a.example';
      const before = await state();
      for (const [method, path] of refusals(other, otherUser, otherName === 'b' ? 'onlyB' : 'onlyA')) {
        const res = await adminCall(bed.service, method, path, token);
        expect([path, res.status, res.json().errcode]).toEqual([path, 403, 'M_FORBIDDEN']);
      }
      expect(await state()).toEqual(before);
    });
  }

  test('bulk operations of a homeserver admin reach only their own media and what their users fetched', async () => {
    const quarantined = await adminCall(bed.service, 'POST', '/quarantine/server/remote.test', AMY);
    expect(quarantined.json()).toEqual({ num_quarantined: 2 }); // onlyA and both, not onlyB
    const q = await bed.service.services.db.knex('quarantined_media').where({ server_name: 'remote.test' }).pluck('media_id');
    expect(q.sort()).toEqual(['both', 'onlyA']);
    await bed.service.services.admin.quarantine.quarantine({ kind: 'media', ...b }, { actor: 'test', homeserver: null });
    // purge/quarantined as a.example's admin: a's share only; b's quarantined upload stays.
    const dry = await adminCall(bed.service, 'POST', '/purge/quarantined?dry_run=true', AMY);
    expect(dry.json()).toMatchObject({ dry_run: true, count: 2 });
    const purged = await adminCall(bed.service, 'POST', '/purge/quarantined', AMY);
    expect(purged.json()).toMatchObject({ purged: true, count: 2 });
    expect((purged.json().affected as string[]).sort()).toEqual(['mxc://remote.test/both', 'mxc://remote.test/onlyA']);
    expect(await bed.service.services.db.knex('media').where({ server_name: b.serverName, media_id: b.mediaId }).first()).toBeDefined();
    const usage = await adminCall(bed.service, 'GET', '/usage/remote.test', AMY);
    expect(usage.json().raw_counts).toMatchObject({ media: 0 }); // onlyB is not a.example's to see
    expect((await adminCall(bed.service, 'GET', '/usage/remote.test', ROOT)).json().raw_counts).toMatchObject({ media: 1 });
  });

  test('tasks and the audit log show a homeserver admin only their own homeserver\'s entries', async () => {
    const all = await adminCall(bed.service, 'GET', '/tasks/all', AMY);
    expect(all.status).toBe(200);
    expect((all.json() as unknown as Array<{ task_id: number }>).map((t) => t.task_id)).not.toContain(bTask);
    const one = await adminCall(bed.service, 'GET', `/tasks/${bTask}`, AMY);
    expect([one.status, one.json().errcode]).toEqual([404, 'M_NOT_FOUND']);
    expect((await adminCall(bed.service, 'GET', `/tasks/${bTask}`, BOB)).status).toBe(200);
    const audit = (await adminCall(bed.service, 'GET', '/audit', AMY)).json().entries as Array<{ scope: string; actor: string }>;
    expect(audit.length).toBeGreaterThan(0);
    expect(audit.every((e) => e.scope === 'a.example')).toBe(true);
    const everything = (await adminCall(bed.service, 'GET', '/audit?limit=1000', ROOT)).json().entries as Array<{ scope: string }>;
    expect(everything.some((e) => e.scope === 'b.example')).toBe(true);
  });
});
