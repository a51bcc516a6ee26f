// The keyring's own fetches from /_matrix/key/v2/server and MSC4100's scoped endpoint: caching, rate limits, validity, and responses it must reject.
import { createHook } from 'node:async_hooks';
import { MAX_KEY_VALIDITY_MS } from '../../src/keys/server-keys.js';
import { createLogger } from '../../src/log.js';
import { SCOPED, V2 } from '../helpers/key-server.js';
import type { SynapseKey } from '../helpers/keys.js';
import { bytes, DAY, keyring, keys, peer, REFETCH_MS, response, signer, storedRows, updateStoredRows, useKeyringPeers } from '../helpers/keyring-peers.js';
import { describeWithPython } from '../helpers/python-available.js';

let clock = Date.now();
useKeyringPeers(() => clock);
beforeEach(() => {
  clock = Date.now();
});

describeWithPython('direct fetch from /_matrix/key/v2/server', () => {
  test('returns the key python generated, then answers from memory and, in a new keyring, from the database', async () => {
    const { name, server } = await peer();
    const [a] = await keys('a1');
    server.answer(V2, await response({ serverName: name, verifyKeys: [a!] }));

    expect(await keyring().getVerifyKey(name, 'ed25519:a1', { scoped: false })).toEqual(bytes(a!));
    const first = keyring();
    expect(await first.getVerifyKey(name, 'ed25519:a1', { scoped: false })).toEqual(bytes(a!));
    expect(await first.getVerifyKey(name, 'ed25519:a1', { scoped: false })).toEqual(bytes(a!));
    expect(server.count(V2)).toBe(1);
    const rows = await storedRows(name);
    expect(rows).toMatchObject([{ key_id: 'ed25519:a1', scoped: false, public_key: a!.publicKey, scopes: null, expired_ts: null, source: 'direct' }]);
  });

  test('an unknown key id triggers one refetch per interval; after the interval it refetches and finds a new key', async () => {
    const { name, server } = await peer();
    const [a, b] = await keys('a1', 'b1');
    server.answer(V2, await response({ serverName: name, verifyKeys: [a!] }));
    const ring = keyring();
    expect(await ring.getVerifyKey(name, 'ed25519:a1', { scoped: false })).toEqual(bytes(a!));
    expect(await ring.getVerifyKey(name, 'ed25519:b1', { scoped: false })).toBeUndefined();
    expect(server.count(V2)).toBe(1); // the first fetch is within the interval: no refetch

    server.answer(V2, await response({ serverName: name, verifyKeys: [a!, b!] }));
    clock += REFETCH_MS / 2;
    for (let i = 0; i < 5; i++) expect(await ring.getVerifyKey(name, 'ed25519:b1', { scoped: false })).toBeUndefined();
    expect(server.count(V2)).toBe(1);

    clock += REFETCH_MS;
    expect(await ring.getVerifyKey(name, 'ed25519:b1', { scoped: false })).toEqual(bytes(b!));
    expect(server.count(V2)).toBe(2);
  });

  test('a key in memory answers without the database: a later change to its row is seen only by a new keyring', async () => {
    const { name, server } = await peer();
    const [a, b] = await keys('a1', 'b1');
    server.answer(V2, await response({ serverName: name, verifyKeys: [a!] }));
    const hits: boolean[] = [];
    const ring = keyring({ cacheLookups: (hit) => hits.push(hit) });
    expect(await ring.getVerifyKey(name, 'ed25519:a1', { scoped: false })).toEqual(bytes(a!));
    await updateStoredRows(name, { public_key: b!.publicKey });
    expect(await ring.getVerifyKey(name, 'ed25519:a1', { scoped: false })).toEqual(bytes(a!));
    expect(hits).toEqual([false, true]);
    expect(await keyring().getVerifyKey(name, 'ed25519:a1', { scoped: false })).toEqual(bytes(b!));
  });

  test('a still-valid key in the database is used without a fetch, even long after the refetch interval', async () => {
    const { name, server } = await peer();
    const [a] = await keys('a1');
    server.answer(V2, await response({ serverName: name, verifyKeys: [a!] }));
    expect(await keyring().getVerifyKey(name, 'ed25519:a1', { scoped: false })).toEqual(bytes(a!));
    clock += 3 * REFETCH_MS;
    expect(await keyring().getVerifyKey(name, 'ed25519:a1', { scoped: false })).toEqual(bytes(a!));
    expect(server.count(V2)).toBe(1);
  });

  test('a recent fetch by another instance (same database) counts against the rate limit', async () => {
    const { name, server } = await peer();
    const [a] = await keys('a1');
    server.answer(V2, await response({ serverName: name, verifyKeys: [a!] }));
    await keyring().getVerifyKey(name, 'ed25519:a1', { scoped: false });
    expect(await keyring().getVerifyKey(name, 'ed25519:zz', { scoped: false })).toBeUndefined();
    expect(server.count(V2)).toBe(1);
  });

  test('concurrent lookups for one server share one fetch', async () => {
    const { name, server } = await peer();
    const other = await peer();
    const [a, b, c] = await keys('a1', 'b1', 'c1');
    server.answer(V2, await response({ serverName: name, verifyKeys: [a!, b!] }));
    other.server.answer(V2, await response({ serverName: other.name, verifyKeys: [c!] }));
    server.delayMs = 200;
    other.server.delayMs = 200;
    const ring = keyring();
    const lookups = Array.from({ length: 30 }, (_, i) =>
      i % 3 === 2 ? ring.getVerifyKey(other.name, 'ed25519:c1', { scoped: false }) : ring.getVerifyKey(name, i % 3 === 0 ? 'ed25519:a1' : 'ed25519:b1', { scoped: false }));
    const results = await Promise.all(lookups);
    results.forEach((result, i) => expect(result).toEqual(bytes(i % 3 === 2 ? c! : i % 3 === 0 ? a! : b!)));
    expect(server.count(V2)).toBe(1);
    expect(other.server.count(V2)).toBe(1);
  });

  test('validity is capped at 7 days from the fetch; past it the key is refetched', async () => {
    const { name, server } = await peer();
    const [a] = await keys('a1');
    server.answer(V2, await response({ serverName: name, verifyKeys: [a!], validUntilTs: clock + 365 * DAY }));
    const ring = keyring();
    const fetchedAt = clock;
    expect(await ring.getVerifyKey(name, 'ed25519:a1', { scoped: false })).toEqual(bytes(a!));
    expect((await storedRows(name))[0].valid_until_ts).toBe(fetchedAt + MAX_KEY_VALIDITY_MS);

    clock = fetchedAt + MAX_KEY_VALIDITY_MS - 1;
    expect(await ring.getVerifyKey(name, 'ed25519:a1', { scoped: false })).toEqual(bytes(a!));
    expect(server.count(V2)).toBe(1);
    server.answer(V2, { errcode: 'M_UNKNOWN', error: 'down' }, 500);
    clock = fetchedAt + MAX_KEY_VALIDITY_MS;
    expect(await ring.getVerifyKey(name, 'ed25519:a1', { scoped: false })).toBeUndefined();
    expect(server.count(V2)).toBe(2);
  });

  test('a key whose valid_until_ts has passed is not usable, and a refetch with a fresh validity makes it usable', async () => {
    const { name, server } = await peer();
    const [a] = await keys('a1');
    server.answer(V2, await response({ serverName: name, verifyKeys: [a!], validUntilTs: clock - 1 }));
    const ring = keyring();
    expect(await ring.getVerifyKey(name, 'ed25519:a1', { scoped: false })).toBeUndefined();
    server.answer(V2, await response({ serverName: name, verifyKeys: [a!], validUntilTs: clock + DAY + REFETCH_MS }));
    clock += REFETCH_MS;
    expect(await ring.getVerifyKey(name, 'ed25519:a1', { scoped: false })).toEqual(bytes(a!));
  });

  test('old_verify_keys are stored as expired and never returned', async () => {
    const { name, server } = await peer();
    const [a, old] = await keys('a1', 'old1');
    server.answer(V2, await response({ serverName: name, verifyKeys: [a!], oldVerifyKeys: [old!] }));
    expect(await keyring().getVerifyKey(name, 'ed25519:old1', { scoped: false })).toBeUndefined();
    const rows = await storedRows(name);
    expect(rows.map((r: { key_id: string; expired_ts: number | null }) => [r.key_id, r.expired_ts !== null])).toEqual([['ed25519:a1', false], ['ed25519:old1', true]]);
  });

  test('a key server that never answers makes the lookup fail after the fetch timeout', async () => {
    const { name, server } = await peer();
    server.hang(V2);
    const started = Date.now();
    expect(await keyring({ fetchTimeoutMs: 300 }).getVerifyKey(name, 'ed25519:a1', { scoped: false })).toBeUndefined();
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  test('a fetch that times out is logged with the server, the source and why', async () => {
    const { name, server } = await peer();
    server.hang(V2);
    const lines: Array<Record<string, unknown>> = [];
    const log = createLogger('info', { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) });
    expect(await keyring({ fetchTimeoutMs: 300, log }).getVerifyKey(name, 'ed25519:a1', { scoped: false })).toBeUndefined();
    expect(lines).toEqual([expect.objectContaining({ level: 40, msg: 'fetching server keys failed', serverName: name, scoped: false, source: 'direct', reason: 'direct timed out' })]);
  });

  test('a fetch that answers leaves no timeout timer running', async () => {
    const { name, server } = await peer();
    const [a] = await keys('a1');
    server.answer(V2, await response({ serverName: name, verifyKeys: [a!] }));
    // Watch only the timers this call creates: counting all of them fails whenever another test's timer fires meanwhile.
    const created: Array<{ duration: number; timer: { _destroyed?: boolean } }> = [];
    const hook = createHook({
      init(_id, type, _trigger, resource) {
        if (type === 'Timeout') created.push({ duration: (resource as { _idleTimeout: number })._idleTimeout, timer: resource as { _destroyed?: boolean } });
      },
    }).enable();
    try {
      expect(await keyring({ fetchTimeoutMs: 30_000 }).getVerifyKey(name, 'ed25519:a1', { scoped: false })).toEqual(bytes(a!));
    } finally {
      hook.disable();
    }
    const fetchTimers = created.filter(({ duration }) => duration === 30_000);
    expect(fetchTimers.length).toBeGreaterThan(0);
    expect(fetchTimers.filter(({ timer }) => !timer._destroyed).length).toBe(0);
  });

  test('a server that is not reachable at all gives no key', async () => {
    expect(await keyring().getVerifyKey('unreachable.test:1', 'ed25519:a1', { scoped: false })).toBeUndefined();
  });
});

describeWithPython('invalid key responses are rejected whole, and nothing is stored', () => {
  const cases: Array<[string, (name: string, a: SynapseKey, other: SynapseKey) => Promise<unknown>]> = [
    // Validly self-signed under the name asked: only the server_name check can refuse it.
    ['server_name is another server', (name, a) => response({ serverName: 'someone-else.test', verifyKeys: [a], signAs: name })],
    ['signed under another name', (name, a) => response({ serverName: name, verifyKeys: [a], signAs: 'someone-else.test' })],
    ['no signature at all', (name, a) => response({ serverName: name, verifyKeys: [a], signWith: [] })],
    ['signed only by a key not in verify_keys', (name, a, other) => response({ serverName: name, verifyKeys: [a], signWith: [other] })],
    ['signed only by an old key', (name, a, other) => response({ serverName: name, verifyKeys: [a], oldVerifyKeys: [other], signWith: [other] })],
    ['a self-signature by a listed key that does not verify', async (name, a) => {
      const forged = await signer.generateKey(a.version); // same key id, another key
      return response({ serverName: name, verifyKeys: [a], signWith: [forged] });
    }],
    ['one good and one bad self-signature', async (name, a, other) => {
      const signed = await response({ serverName: name, verifyKeys: [a, other] });
      const sigs = (signed.signatures as Record<string, Record<string, string>>)[name]!;
      sigs[other.keyId] = sigs[a.keyId]!;
      return signed;
    }],
    ['content altered after signing', async (name, a) => ({ ...(await response({ serverName: name, verifyKeys: [a] })), valid_until_ts: clock + 2 * DAY })],
    ['valid_until_ts missing', async (name, a) => {
      const { valid_until_ts: _dropped, ...rest } = await response({ serverName: name, verifyKeys: [a] });
      return rest;
    }],
    ['a key that is not 32 bytes', async (name, a) =>
      signer.sign({ server_name: name, valid_until_ts: clock + DAY, verify_keys: { [a.keyId]: { key: a.publicKey }, 'ed25519:short': { key: 'AAAA' } } }, name, [a])],
    ['not JSON object', async () => ['not', 'an', 'object']],
  ];

  test.each(cases)('%s', async (_title, make) => {
    const { name, server } = await peer();
    const [a, other] = await keys('a1', 'b1');
    server.answer(V2, await make(name, a!, other!));
    expect(await keyring().getVerifyKey(name, 'ed25519:a1', { scoped: false })).toBeUndefined();
    expect(server.count(V2)).toBe(1);
    expect(await storedRows(name)).toEqual([]);
  });
});

describeWithPython('MSC4100 scoped keys', () => {
  test('only keys from the scoped endpoint whose scope includes m.requests are returned for scoped lookups', async () => {
    const { name, server } = await peer();
    const [req, ev, plain] = await keys('req', 'ev', 'plain');
    server.answer(SCOPED, await response({ serverName: name, verifyKeys: [req!, ev!], scopes: { [req!.keyId]: ['m.requests', 'm.events'], [ev!.keyId]: ['m.events'] } }));
    server.answer(V2, await response({ serverName: name, verifyKeys: [plain!] }));
    const ring = keyring();
    expect(await ring.getVerifyKey(name, req!.keyId, { scoped: true })).toEqual(bytes(req!));
    expect(await ring.getVerifyKey(name, ev!.keyId, { scoped: true })).toBeUndefined();
    expect(await ring.getVerifyKey(name, plain!.keyId, { scoped: true })).toBeUndefined();
    // The scoped endpoint's keys are not v2 keys, and the v2 endpoint's are not scoped ones.
    expect(await ring.getVerifyKey(name, req!.keyId, { scoped: false })).toBeUndefined();
    expect(await ring.getVerifyKey(name, plain!.keyId, { scoped: false })).toEqual(bytes(plain!));
    expect((await storedRows(name)).map((r: { key_id: string; scoped: boolean; scopes: string[] | null }) => [r.key_id, r.scoped, r.scopes])).toEqual([
      ['ed25519:ev', true, ['m.events']],
      ['ed25519:plain', false, null],
      ['ed25519:req', true, ['m.requests', 'm.events']],
    ]);
  });

  test('a scoped response with a key lacking its scope array is rejected whole', async () => {
    const { name, server } = await peer();
    const [req, bare] = await keys('req', 'bare');
    server.answer(SCOPED, await response({ serverName: name, verifyKeys: [req!, bare!], scopes: { [req!.keyId]: ['m.requests'] } }));
    expect(await keyring().getVerifyKey(name, req!.keyId, { scoped: true })).toBeUndefined();
    expect(await storedRows(name)).toEqual([]);
  });
});
