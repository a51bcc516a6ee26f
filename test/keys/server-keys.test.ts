// Key responses and notary answers parsed on their own, signed by Synapse's signedjson: each refusal names
// its reason (the keyring logs it), and what a valid response may also carry is accepted.
import type { NotaryConfig } from '../../src/config/config.js';
import { KeyResponseError, parseNotaryResponse, parseServerKeys } from '../../src/keys/server-keys.js';
import type { SynapseKey } from '../helpers/keys.js';
import { describeWithPython } from '../helpers/python-available.js';
import { PythonWorker } from '../helpers/python-worker.js';

const NAME = 'origin.test';
const NOW = 1_800_000_000_000;
const PARSE = { serverName: NAME, scoped: false, now: NOW };
let signer: PythonWorker;
let a: SynapseKey;
let b: SynapseKey;
let n1: SynapseKey;

/** The error `run` throws, as name and message; a non-KeyResponseError fails the test. */
function refusal(run: () => unknown): { name: string; message: string } {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(KeyResponseError);
    return { name: (error as Error).name, message: (error as Error).message };
  }
  throw new Error('not refused');
}

/** A key response for NAME with `fields` replacing the defaults, self-signed by `signWith`. */
async function signed(fields: Record<string, unknown> = {}, signWith: SynapseKey[] = [a]) {
  return signer.sign({ server_name: NAME, valid_until_ts: NOW + 1000, verify_keys: { [a.keyId]: { key: a.publicKey } }, ...fields }, NAME, signWith);
}

describeWithPython('server key responses', () => {
  beforeAll(async () => {
    signer = PythonWorker.acquire();
    [a, b, n1] = await Promise.all(['a1', 'b1', 'n1'].map((v) => signer.generateKey(v)));
  });
  afterAll(() => signer.release());

  const refused: Array<[string, () => Promise<unknown>, boolean]> = [
    ['the response is not a JSON object', async () => null, false],
    ['the response is not a JSON object', async () => 'a string', false],
    ['the response is not a JSON object', async () => ['an', 'array'], false],
    ['server_name is "other.test", not the server asked', () => signed({ server_name: 'other.test' }), false],
    ['valid_until_ts is not an integer', () => signed({ valid_until_ts: String(NOW) }), false],
    ['valid_until_ts is not an integer', () => signed({ valid_until_ts: NOW + 0.5 }), false],
    ['verify_keys is not an object', () => signed({ verify_keys: [] }), false],
    ['old_verify_keys is not an object', () => signed({ old_verify_keys: 'none' }), false],
    ['invalid key id "ed25519:a-1"', () => signed({ verify_keys: { 'ed25519:a-1': { key: 'x' } } }), false],
    [`invalid key id ${JSON.stringify(`ed25519:${'-'.repeat(72)}`)}`, () => signed({ verify_keys: { [`ed25519:${'-'.repeat(100)}`]: {} } }), false],
    ['key ed25519:x has no "key"', () => signed({ verify_keys: { 'ed25519:x': {} } }), false],
    ['key ed25519:x has no "key"', () => signed({ verify_keys: { 'ed25519:x': 'AAAA' } }), false],
    ['key ed25519:x is not Base64', () => signed({ verify_keys: { 'ed25519:x': { key: '!!!' } } }), false],
    ['key ed25519:x is not a 32-byte ed25519 key', () => signed({ verify_keys: { 'ed25519:x': { key: 'AAAA' } } }), false],
    ['key ed25519:a1 has no scope array', () => signed(), true],
    ['key ed25519:a1 has no scope array', () => signed({ verify_keys: { [a.keyId]: { key: a.publicKey, scope: ['m.requests', 1] } } }), true],
    ['old key ed25519:b1 has no expired_ts', () => signed({ old_verify_keys: { [b.keyId]: { key: b.publicKey } } }), false],
    ['old key ed25519:b1 has no expired_ts', () => signed({ old_verify_keys: { [b.keyId]: { key: b.publicKey, expired_ts: 1.5 } } }), false],
    ['signatures is not an object', async () => ({ ...(await signed()), signatures: [] }), false],
    ['the response is not signed by the server', () => signer.sign({ server_name: NAME, valid_until_ts: NOW, verify_keys: { [a.keyId]: { key: a.publicKey } } }, 'other.test', [a]), false],
    ['the response is not signed by the server', async () => ({ ...(await signed()), signatures: { [NAME]: 'ed25519:a1' } }), false],
    ['the self-signature by ed25519:a1 does not verify', async () => ({ ...(await signed()), valid_until_ts: NOW + 2000 }), false],
    ['the response is not signed by any of its verify_keys', () => signed({}, [b]), false],
  ];

  test.each(refused)('refused: %s', async (reason, make, scoped) => {
    const json = await make();
    expect(refusal(() => parseServerKeys(json, { ...PARSE, scoped }))).toEqual({ name: 'KeyResponseError', message: `keys of ${NAME}: ${reason}` });
  });

  test('unknown algorithms are skipped, a key both current and old counts as current, and signatures by other keys are ignored', async () => {
    const json = await signed({
      verify_keys: { [a.keyId]: { key: a.publicKey }, 'curve25519:c': { key: 'AAAA' } },
      old_verify_keys: { [a.keyId]: { key: a.publicKey, expired_ts: NOW - 5 }, [b.keyId]: { key: b.publicKey, expired_ts: NOW - 9 }, 'curve25519:d': {} },
    }, [a, b]);
    const set = parseServerKeys(json, PARSE);
    expect(set).toEqual({
      serverName: NAME,
      validUntilTs: NOW + 1000,
      keys: [
        { keyId: a.keyId, publicKey: new Uint8Array(Buffer.from(a.publicKey, 'base64')), scopes: null, expiredTs: null },
        { keyId: b.keyId, publicKey: new Uint8Array(Buffer.from(b.publicKey, 'base64')), scopes: null, expiredTs: NOW - 9 },
      ],
    });
  });

  test('a scoped response without old_verify_keys gives each key its scopes', async () => {
    const json = await signed({ verify_keys: { [a.keyId]: { key: a.publicKey, scope: ['m.requests'] } } });
    expect(parseServerKeys(json, { ...PARSE, scoped: true }).keys).toEqual([expect.objectContaining({ keyId: a.keyId, scopes: ['m.requests'], expiredTs: null })]);
  });
});

describeWithPython('notary answers', () => {
  let notary: NotaryConfig;
  beforeAll(async () => {
    signer = PythonWorker.acquire();
    [a, b, n1] = await Promise.all(['a1', 'b1', 'n1'].map((v) => signer.generateKey(v)));
    // A configured key id whose key is not Base64 is skipped, not fatal.
    notary = { serverName: 'notary.test', verifyKeys: { [n1.keyId]: n1.publicKey, 'ed25519:broken': '!!!' } };
  });
  afterAll(() => signer.release());

  const byNotary = async (entry: object, keys: SynapseKey[] = [n1]) => signer.sign(entry, 'notary.test', keys);

  test('entries for other servers are skipped; a broken configured key is skipped when another verifies', async () => {
    const other = await signer.sign({ server_name: 'other.test', valid_until_ts: NOW, verify_keys: { [b.keyId]: { key: b.publicKey } } }, 'other.test', [b]);
    const brokenSigner = { ...b, keyId: 'ed25519:broken', version: 'broken' };
    const answer = { server_keys: ['not an entry', other, await byNotary(await signed(), [n1, brokenSigner])] };
    const sets = parseNotaryResponse(answer, notary, PARSE);
    expect(sets.map((s) => [s.serverName, s.keys.map((k) => k.keyId)])).toEqual([[NAME, [a.keyId]]]);
  });

  const refused: Array<[string, () => Promise<unknown>]> = [
    ['the answer has no server_keys array', async () => ({ server_keys: {} })],
    ['the answer has no server_keys array', async () => ['server_keys']],
    ['an entry is not signed by the notary', async () => ({ server_keys: [await signed()] })],
    ['an entry is not signed by the notary', async () => ({ server_keys: [{ ...(await signed()), signatures: undefined }] })],
    ['an entry is not signed by any configured notary key', async () => ({ server_keys: [await byNotary(await signed(), [{ ...b, keyId: 'ed25519:b9', version: 'b9' }])] })],
    ['the notary signature by ed25519:n1 does not verify', async () => ({ server_keys: [await byNotary(await signed(), [{ ...b, keyId: n1.keyId, version: n1.version }])] })],
  ];

  test.each(refused)('refused: %s', async (reason, make) => {
    const json = await make();
    expect(refusal(() => parseNotaryResponse(json, notary, PARSE))).toEqual({ name: 'KeyResponseError', message: `keys of ${NAME}: notary notary.test: ${reason}` });
  });
});
