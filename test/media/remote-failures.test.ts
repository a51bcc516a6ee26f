// The failure cache (in the real database, shared by instances) and the per-origin back-off, on a clock the
// test moves: what is remembered, for exactly how long, what is not, and how the back-off grows.
import { RemoteHttpError } from '../../src/federation/client.js';
import { UpstreamError } from '../../src/federation/http.js';
import type { Database } from '../../src/db/database.js';
import { MatrixError, notYetUploaded } from '../../src/matrix/errors.js';
import { NotAttempted } from '../../src/media/remote-errors.js';
import { RemoteFailures } from '../../src/media/remote-failures.js';
import { RemoteFetchStore } from '../../src/media/remote-store.js';
import { openTestDatabase } from '../helpers/database.js';

const CACHE_MS = 10_000;
const badGateway = () => new MatrixError(502, 'M_UNKNOWN', 'Could not fetch the remote content');

let db: Database;
let store: RemoteFetchStore;
let clock: number;
let failures: RemoteFailures;
let key = 0;
const fetchKey = () => `download failures.test k${++key}`;

beforeAll(async () => {
  db = await openTestDatabase();
  store = new RemoteFetchStore(db.knex);
});
afterAll(() => db.close());
beforeEach(() => {
  clock = 1_000_000;
  failures = new RemoteFailures(store, CACHE_MS, () => clock);
});

/** What assertNotFailedRecently / assertNotBackingOff threw, or undefined. */
async function refusal(check: () => unknown): Promise<{ status: number; errcode: string; error: string } | undefined> {
  try {
    await check();
    return undefined;
  } catch (error) {
    expect(error).toBeInstanceOf(NotAttempted);
    const { status, errcode, message } = error as NotAttempted;
    return { status, errcode, error: message };
  }
}

describe('the failure cache', () => {
  test("remembers the client's error until failureCacheMs has passed, and not a moment longer", async () => {
    const k = fetchKey();
    expect(await refusal(() => failures.assertNotFailedRecently(k))).toBeUndefined();
    await failures.failed(k, 'origin.test', new RemoteHttpError(500, 'M_UNKNOWN', {}, 'x'), new MatrixError(502, 'M_UNKNOWN', 'The origin server answered 500'));
    clock += CACHE_MS - 1;
    expect(await refusal(() => failures.assertNotFailedRecently(k))).toEqual({ status: 502, errcode: 'M_UNKNOWN', error: 'The origin server answered 500' });
    expect(await refusal(() => failures.assertNotFailedRecently(fetchKey()))).toBeUndefined();
    clock += 1;
    expect(await refusal(() => failures.assertNotFailedRecently(k))).toBeUndefined();
  });

  test('a later failure replaces the remembered one; a success forgets it', async () => {
    const k = fetchKey();
    await failures.failed(k, 'origin.test', new Error('first'), badGateway());
    await failures.failed(k, 'origin.test', new RemoteHttpError(404, 'M_NOT_FOUND', {}, 'x'), new MatrixError(404, 'M_NOT_FOUND', 'gone'));
    expect(await refusal(() => failures.assertNotFailedRecently(k))).toEqual({ status: 404, errcode: 'M_NOT_FOUND', error: 'gone' });
    await failures.succeeded(k, 'origin.test');
    expect(await refusal(() => failures.assertNotFailedRecently(k))).toBeUndefined();
  });

  test('"not yet uploaded" is never remembered, nor anything when failureCacheMs is 0', async () => {
    const k = fetchKey();
    await failures.failed(k, 'origin.test', new RemoteHttpError(504, 'M_NOT_YET_UPLOADED', {}, 'x'), notYetUploaded());
    expect(await refusal(() => failures.assertNotFailedRecently(k))).toBeUndefined();
    const uncached = new RemoteFailures(store, 0, () => clock);
    await uncached.failed(k, 'origin.test', new Error('failed'), badGateway());
    expect(await refusal(() => failures.assertNotFailedRecently(k))).toBeUndefined();
    // Nothing written either: expired rows are only ever replaced, so each would stay for good.
    expect(await db.knex('remote_fetch_failures').where({ fetch_key: k })).toEqual([]);
  });

  test('expired failures leave the table: the next failure after failureCacheMs purges them', async () => {
    const [expired, fresh] = [fetchKey(), fetchKey()];
    await failures.failed(expired, 'origin.test', new Error('failed'), badGateway());
    clock += CACHE_MS;
    await failures.failed(fresh, 'origin.test', new Error('failed'), badGateway());
    const keys = async () => (await db.knex('remote_fetch_failures').whereIn('fetch_key', [expired, fresh]).pluck('fetch_key')) as string[];
    for (let waited = 0; (await keys()).length > 1 && waited < 5000; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await keys()).toEqual([fresh]);
  });
});

describe('the back-off of an origin', () => {
  const unreachable = () => new UpstreamError('unreachable', 'connect ECONNREFUSED');

  test('an unreachable or timed-out origin is backed off for failureCacheMs, then doubling, each origin on its own', async () => {
    await failures.failed(fetchKey(), 'down.test', unreachable(), badGateway());
    expect(await refusal(() => failures.assertNotBackingOff('down.test'))).toEqual({
      status: 502, errcode: 'M_UNKNOWN', error: 'down.test could not be reached recently; not retrying for 10 s',
    });
    expect(await refusal(() => failures.assertNotBackingOff('up.test'))).toBeUndefined();
    clock += 500;
    expect((await refusal(() => failures.assertNotBackingOff('down.test')))?.error).toMatch(/not retrying for 10 s$/);
    clock += CACHE_MS - 500 - 1;
    expect(await refusal(() => failures.assertNotBackingOff('down.test'))).toBeDefined();
    clock += 1;
    expect(await refusal(() => failures.assertNotBackingOff('down.test'))).toBeUndefined();

    await failures.failed(fetchKey(), 'down.test', new UpstreamError('timeout', 'no answer'), badGateway());
    expect((await refusal(() => failures.assertNotBackingOff('down.test')))?.error).toMatch(/not retrying for 20 s$/);
    clock += 2 * CACHE_MS;
    await failures.failed(fetchKey(), 'down.test', unreachable(), badGateway());
    expect((await refusal(() => failures.assertNotBackingOff('down.test')))?.error).toMatch(/not retrying for 40 s$/);
  });

  test('a back-off an hour past its end is forgotten: the next failure starts again from failureCacheMs', async () => {
    await failures.failed(fetchKey(), 'down.test', unreachable(), badGateway());
    clock += CACHE_MS;
    await failures.failed(fetchKey(), 'down.test', unreachable(), badGateway());
    clock += 2 * CACHE_MS + 3600_000 - 1;
    await failures.failed(fetchKey(), 'other.test', new Error('failed'), badGateway());
    await failures.failed(fetchKey(), 'down.test', unreachable(), badGateway());
    expect((await refusal(() => failures.assertNotBackingOff('down.test')))?.error).toMatch(/not retrying for 40 s$/);
    clock += 2 * 40_000 + 3600_000;
    await failures.failed(fetchKey(), 'other.test', new Error('failed'), badGateway());
    await failures.failed(fetchKey(), 'down.test', unreachable(), badGateway());
    expect((await refusal(() => failures.assertNotBackingOff('down.test')))?.error).toMatch(/not retrying for 10 s$/);
  });

  test('the back-off stops growing at an hour', async () => {
    const slow = new RemoteFailures(store, 1000_000, () => clock);
    for (let i = 0; i < 4; i++) await slow.failed(fetchKey(), 'down.test', unreachable(), badGateway());
    expect((await refusal(() => slow.assertNotBackingOff('down.test')))?.error).toMatch(/not retrying for 3600 s$/);
  });

  test('other failures do not back the origin off; a success ends its back-off', async () => {
    for (const error of [new UpstreamError('bad-response', 'garbage'), new UpstreamError('blocked', 'private'), new RemoteHttpError(500, undefined, {}, 'x')]) {
      await failures.failed(fetchKey(), 'flaky.test', error, badGateway());
    }
    expect(await refusal(() => failures.assertNotBackingOff('flaky.test'))).toBeUndefined();
    await failures.failed(fetchKey(), 'flaky.test', unreachable(), badGateway());
    expect(await refusal(() => failures.assertNotBackingOff('flaky.test'))).toBeDefined();
    await failures.succeeded(fetchKey(), 'flaky.test');
    expect(await refusal(() => failures.assertNotBackingOff('flaky.test'))).toBeUndefined();
    await failures.failed(fetchKey(), 'flaky.test', unreachable(), badGateway());
    expect((await refusal(() => failures.assertNotBackingOff('flaky.test')))?.error).toMatch(/not retrying for 10 s$/);
  });
});
