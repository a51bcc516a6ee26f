import type { NotaryConfig } from '../../src/config/config.js';
import type { Database } from '../../src/db/database.js';
import { buildConfig } from '../../src/config/config.js';
import { createFederationClient } from '../../src/federation/outbound.js';
import { createLogger } from '../../src/log.js';
import { Keyring } from '../../src/keys/keyring.js';
import { MAX_KEY_VALIDITY_MS } from '../../src/keys/server-keys.js';
import { openTestDatabase } from '../helpers/database.js';
import { LoopbackKeyServer, serverKeysResponse, type ServerKeysSpec } from '../helpers/key-server.js';
import type { SynapseKey } from '../helpers/keys.js';
import { PythonWorker } from '../helpers/python-worker.js';

const V2 = '/_matrix/key/v2/server';
const SCOPED = '/_matrix/key/unstable/org.matrix.msc4100/server';
const QUERY = '/_matrix/key/v2/query';
const SCOPED_QUERY = '/_matrix/key/unstable/org.matrix.msc4100/query';
const DAY = 24 * 3600_000;
const REFETCH_MS = 60_000;

let db: Database;
let signer: PythonWorker;
const servers: LoopbackKeyServer[] = [];
const clients: Array<{ close(): void }> = [];
const overrides: Record<string, string> = {};
let clock = Date.now();
let serial = 0;

beforeAll(async () => {
  db = await openTestDatabase();
  signer = PythonWorker.acquire();
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  for (const client of clients) client.close();
  await signer.release();
  await db.close();
});
beforeEach(() => {
  clock = Date.now();
});

/** A fresh server name with its own loopback key server. */
async function peer(): Promise<{ name: string; server: LoopbackKeyServer }> {
  const name = `origin${++serial}.test`;
  const server = await LoopbackKeyServer.start();
  servers.push(server);
  overrides[name] = server.url;
  return { name, server };
}

function keyring(options: { notaries?: NotaryConfig[]; notaryFirst?: boolean; fetchTimeoutMs?: number } = {}): Keyring {
  // The service's own outbound client; overrides are read per request, so peers added later are reached.
  const config = buildConfig({ federation: { serverOverrides: overrides, requestTimeoutMs: 5_000 } });
  const federation = createFederationClient(config, { activeKey: async () => undefined }, createLogger('silent'));
  clients.push(federation);
  return new Keyring({
    knex: db.knex,
    federation: { notaries: options.notaries ?? [], notaryFirst: options.notaryFirst ?? false, keyRefetchIntervalMs: REFETCH_MS },
    fetchServerKeys: federation.fetchServerKeysJson,
    queryNotary: federation.queryNotary,
    fetchTimeoutMs: options.fetchTimeoutMs ?? 5_000,
    now: () => clock,
  });
}

function keys(...versions: string[]): Promise<SynapseKey[]> {
  return Promise.all(versions.map((v) => signer.generateKey(v)));
}

function bytes(key: SynapseKey): Uint8Array {
  return new Uint8Array(Buffer.from(key.publicKey, 'base64'));
}

function response(spec: Omit<ServerKeysSpec, 'validUntilTs'> & { validUntilTs?: number }) {
  return serverKeysResponse(signer, { validUntilTs: clock + DAY, ...spec });
}

async function storedRows(serverName: string) {
  return db.knex('remote_server_keys').where({ server_name: serverName }).orderBy('key_id');
}

describe('direct fetch from /_matrix/key/v2/server', () => {
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
    expect(await ring.getVerifyKey(name, 'ed25519:a1', { scoped: false })).toBeDefined();
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
    expect(await ring.getVerifyKey(name, 'ed25519:a1', { scoped: false })).toBeDefined();
    expect((await storedRows(name))[0].valid_until_ts).toBe(fetchedAt + MAX_KEY_VALIDITY_MS);

    clock = fetchedAt + MAX_KEY_VALIDITY_MS - 1;
    expect(await ring.getVerifyKey(name, 'ed25519:a1', { scoped: false })).toBeDefined();
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

  test('a server that is not reachable at all gives no key', async () => {
    expect(await keyring().getVerifyKey('unreachable.test:1', 'ed25519:a1', { scoped: false })).toBeUndefined();
  });
});

describe('invalid key responses are rejected whole, and nothing is stored', () => {
  const cases: Array<[string, (name: string, a: SynapseKey, other: SynapseKey) => Promise<unknown>]> = [
    ['server_name is another server', (_name, a) => response({ serverName: 'someone-else.test', verifyKeys: [a] })],
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

describe('MSC4100 scoped keys', () => {
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

describe('notaries', () => {
  let notaryKey: SynapseKey;
  let strangerKey: SynapseKey;
  let notary: LoopbackKeyServer;
  let config: NotaryConfig;

  beforeAll(async () => {
    [notaryKey, strangerKey] = await keys('n1', 'n2');
    notary = await LoopbackKeyServer.start();
    servers.push(notary);
    config = { serverName: 'notary.test', verifyKeys: { [notaryKey.keyId]: notaryKey.publicKey }, url: notary.url };
  });
  beforeEach(() => notary.clear());

  /** The notary answers with each entry signed by `keysOfNotary`. */
  async function notaryAnswers(path: string, entries: Array<Record<string, unknown>>, keysOfNotary: SynapseKey[] = [notaryKey]) {
    const signed = await Promise.all(entries.map((e) => signer.sign(e, 'notary.test', keysOfNotary)));
    notary.answer(path, { server_keys: signed });
  }

  test('is asked, with the key id and minimum_valid_until_ts, when the server does not answer; its answer is verified and stored', async () => {
    const { name, server } = await peer();
    const [a] = await keys('a1');
    await notaryAnswers(QUERY, [await response({ serverName: name, verifyKeys: [a!] })]);
    expect(await keyring({ notaries: [config] }).getVerifyKey(name, 'ed25519:a1', { scoped: false })).toEqual(bytes(a!));
    expect(server.count(V2)).toBe(1);
    expect(notary.requests).toEqual([{ method: 'POST', path: QUERY, body: { server_keys: { [name]: { 'ed25519:a1': { minimum_valid_until_ts: clock } } } } }]);
    expect((await storedRows(name))[0]).toMatchObject({ source: 'notary.test' });
  });

  test('is asked first with notaryFirst, and the server itself then not at all', async () => {
    const { name, server } = await peer();
    const [a] = await keys('a1');
    server.answer(V2, await response({ serverName: name, verifyKeys: [a!] }));
    await notaryAnswers(QUERY, [await response({ serverName: name, verifyKeys: [a!] })]);
    expect(await keyring({ notaries: [config], notaryFirst: true }).getVerifyKey(name, 'ed25519:a1', { scoped: false })).toEqual(bytes(a!));
    expect(notary.count(QUERY)).toBe(1);
    expect(server.count(V2)).toBe(0);
  });

  test('the scoped query path serves scoped lookups', async () => {
    const { name } = await peer();
    const [a] = await keys('a1');
    await notaryAnswers(SCOPED_QUERY, [await response({ serverName: name, verifyKeys: [a!], scopes: { [a!.keyId]: ['m.requests'] } })]);
    expect(await keyring({ notaries: [config] }).getVerifyKey(name, 'ed25519:a1', { scoped: true })).toEqual(bytes(a!));
    expect(notary.count(SCOPED_QUERY)).toBe(1);
  });

  test('a second notary is tried when the first fails', async () => {
    const { name } = await peer();
    const [a] = await keys('a1');
    await notaryAnswers(QUERY, [await response({ serverName: name, verifyKeys: [a!] })]);
    const broken: NotaryConfig = { serverName: 'broken.test', verifyKeys: config.verifyKeys, url: 'http://127.0.0.1:1' };
    expect(await keyring({ notaries: [broken, config] }).getVerifyKey(name, 'ed25519:a1', { scoped: false })).toEqual(bytes(a!));
  });

  const rejected: Array<[string, (name: string, a: SynapseKey) => Promise<void>]> = [
    ['a notary signature that does not verify', async (name, a) => {
      const entry = await signer.sign(await response({ serverName: name, verifyKeys: [a] }), 'notary.test', [notaryKey]);
      entry.signatures['notary.test']![notaryKey.keyId] = entry.signatures[name]![a.keyId]!;
      notary.answer(QUERY, { server_keys: [entry] });
    }],
    ['signed by a notary key that is not configured', async (name, a) => {
      await notaryAnswers(QUERY, [await response({ serverName: name, verifyKeys: [a] })], [strangerKey]);
    }],
    ['signed by another key under the configured key id', async (name, a) => {
      await notaryAnswers(QUERY, [await response({ serverName: name, verifyKeys: [a] })], [{ ...strangerKey, keyId: notaryKey.keyId, version: notaryKey.version }]);
    }],
    ['not signed by the notary', async (name, a) => {
      notary.answer(QUERY, { server_keys: [await response({ serverName: name, verifyKeys: [a] })] });
    }],
    ['notary-signed but without the server self-signature', async (name, a) => {
      await notaryAnswers(QUERY, [await response({ serverName: name, verifyKeys: [a], signWith: [] })]);
    }],
    ['notary-signed but with a forged self-signature', async (name, a) => {
      const forged = await signer.generateKey(a.version);
      await notaryAnswers(QUERY, [await response({ serverName: name, verifyKeys: [a], signWith: [forged] })]);
    }],
    ['only keys of another server', async (_name, a) => {
      await notaryAnswers(QUERY, [await response({ serverName: 'someone-else.test', verifyKeys: [a] })]);
    }],
    ['no server_keys array', async () => {
      notary.answer(QUERY, { server_keys: {} });
    }],
  ];

  test.each(rejected)('rejects an answer with %s', async (_title, prepare) => {
    const { name } = await peer();
    const [a] = await keys('a1');
    await prepare(name, a!);
    expect(await keyring({ notaries: [config] }).getVerifyKey(name, 'ed25519:a1', { scoped: false })).toBeUndefined();
    expect(notary.count(QUERY)).toBe(1);
    expect(await storedRows(name)).toEqual([]);
  });
});
