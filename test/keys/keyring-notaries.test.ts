// The keyring asking notaries (/_matrix/key/v2/query and MSC4100's scoped query): when, in what order, and which answers it rejects.
import type { NotaryConfig } from '../../src/config/config.js';
import { LoopbackKeyServer, QUERY, SCOPED_QUERY, V2 } from '../helpers/key-server.js';
import type { SynapseKey } from '../helpers/keys.js';
import { bytes, keyring, keys, peer, response, servers, signer, storedRows, useKeyringPeers } from '../helpers/keyring-peers.js';
import { describeWithPython } from '../helpers/python-available.js';

let clock = Date.now();
useKeyringPeers(() => clock);
beforeEach(() => {
  clock = Date.now();
});

describeWithPython('notaries', () => {
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

  test('is asked when the server answers without the key, and the key it vouches for is used', async () => {
    const { name, server } = await peer();
    const [a, b] = await keys('a1', 'b1');
    server.answer(V2, await response({ serverName: name, verifyKeys: [a!] }));
    await notaryAnswers(QUERY, [await response({ serverName: name, verifyKeys: [a!, b!] })]);
    expect(await keyring({ notaries: [config] }).getVerifyKey(name, 'ed25519:b1', { scoped: false })).toEqual(bytes(b!));
    expect([server.count(V2), notary.count(QUERY)]).toEqual([1, 1]);
  });

  test('the keys of every entry for the server in one answer are kept', async () => {
    const { name } = await peer();
    const [a, b] = await keys('a1', 'b1');
    await notaryAnswers(QUERY, [await response({ serverName: name, verifyKeys: [a!] }), await response({ serverName: name, verifyKeys: [b!] })]);
    const ring = keyring({ notaries: [config] });
    expect(await ring.getVerifyKey(name, 'ed25519:a1', { scoped: false })).toEqual(bytes(a!));
    expect(await ring.getVerifyKey(name, 'ed25519:b1', { scoped: false })).toEqual(bytes(b!));
    expect(notary.count(QUERY)).toBe(1);
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
