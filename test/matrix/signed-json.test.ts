import { readFileSync } from 'node:fs';
import { decodeBase64, encodeBase64 } from '../../src/matrix/base64.js';
import { createSigner, publicKeyFromSeed } from '../../src/matrix/ed25519.js';
import { signedBytes, signJson, signatureOf, verifyJsonSignature } from '../../src/matrix/signed-json.js';
import { runPython } from '../helpers/python-worker.js';
import { describeWithPython } from '../helpers/python-available.js';

// Spec appendix "Cryptographic test vectors": https://spec.matrix.org/v1.16/appendices/#cryptographic-test-vectors
const SPEC_SEED = decodeBase64('YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1');
const SPEC_SIGNER = createSigner(SPEC_SEED);

interface KeyFiles {
  mmr: { file: string; keyId: string; publicKey: string };
  xMatrix: { signedJson: Record<string, unknown>; sig: string };
}
const keyFiles = JSON.parse(readFileSync(new URL('../fixtures/key-files.json', import.meta.url), 'utf8')) as KeyFiles;

describe('signJson: the spec test vectors', () => {
  test('the seed gives the documented public key', () => {
    expect(SPEC_SEED.toString('hex')).toBe('6090c103d5e7af6b15a970fd563ed75549e6159719ae5c3c31dee4316fb75c0d');
    expect(encodeBase64(SPEC_SIGNER.publicKey)).toBe('XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI');
  });

  test('signing {} gives the spec signature', () => {
    expect(signJson({}, 'domain', 'ed25519:1', SPEC_SIGNER)).toEqual({
      signatures: { domain: { 'ed25519:1': 'K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ' } },
    });
  });

  test('signing {"one": 1, "two": "Two"} gives the spec signature', () => {
    expect(signJson({ one: 1, two: 'Two' }, 'domain', 'ed25519:1', SPEC_SIGNER)).toEqual({
      one: 1,
      signatures: { domain: { 'ed25519:1': 'KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw' } },
      two: 'Two',
    });
  });

  test('both spec vectors verify with the derived public key', () => {
    const publicKey = publicKeyFromSeed(SPEC_SEED);
    const signedEmpty = { signatures: { domain: { 'ed25519:1': 'K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ' } } };
    expect(verifyJsonSignature(signedEmpty, 'domain', 'ed25519:1', publicKey)).toBe(true);
    expect(verifyJsonSignature({ ...signedEmpty, extra: 1 }, 'domain', 'ed25519:1', publicKey)).toBe(false);
  });
});

describe('signJson: the X-Matrix vector of test/fixtures/key-files.json (checked with python signedjson)', () => {
  const seed = decodeBase64(/\n\n([A-Za-z0-9+/=]+)\n/.exec(keyFiles.mmr.file)![1]!);
  const signer = createSigner(seed);

  test('the mmr key file seed gives its published public key', () => {
    expect(encodeBase64(signer.publicKey)).toBe(keyFiles.mmr.publicKey);
  });

  test('signing the request JSON reproduces the fixture signature, which verifies', () => {
    const signed = signJson(keyFiles.xMatrix.signedJson, 'example.org', keyFiles.mmr.keyId, signer);
    expect(signed.signatures).toEqual({ 'example.org': { [keyFiles.mmr.keyId]: keyFiles.xMatrix.sig } });
    expect(verifyJsonSignature(signed, 'example.org', keyFiles.mmr.keyId, signer.publicKey)).toBe(true);
  });
});

describe('signJson: what is signed and what is kept', () => {
  const signer = SPEC_SIGNER;

  test('signatures and unsigned are not covered, unsigned is kept, the input is not changed', () => {
    const input = { a: 1, unsigned: { age: 5 } };
    const signed = signJson(input, 'domain', 'ed25519:1', signer);
    expect(input).toEqual({ a: 1, unsigned: { age: 5 } });
    expect(signed.unsigned).toEqual({ age: 5 });
    expect(signedBytes(signed).toString()).toBe('{"a":1}');
    expect(signatureOf(signed, 'domain', 'ed25519:1')).toBe(signatureOf(signJson({ a: 1 }, 'domain', 'ed25519:1', signer), 'domain', 'ed25519:1'));
    expect(verifyJsonSignature({ ...signed, unsigned: { age: 99 } }, 'domain', 'ed25519:1', signer.publicKey)).toBe(true);
  });

  test("other entities' and other keys' signatures are merged, not replaced", () => {
    const input = { a: 1, signatures: { other: { 'ed25519:x': 'AAAA' }, domain: { 'ed25519:old': 'BBBB' } } };
    const signed = signJson(input, 'domain', 'ed25519:1', signer);
    expect(signed.signatures.other).toEqual({ 'ed25519:x': 'AAAA' });
    expect(signed.signatures.domain!['ed25519:old']).toBe('BBBB');
    expect(verifyJsonSignature(signed, 'domain', 'ed25519:1', signer.publicKey)).toBe(true);
    const twice = signJson(signed, 'notary', 'ed25519:n', createSigner(new Uint8Array(32).fill(7)));
    expect(Object.keys(twice.signatures).sort()).toEqual(['domain', 'notary', 'other']);
    expect(verifyJsonSignature(twice, 'domain', 'ed25519:1', signer.publicKey)).toBe(true);
  });

  test('non-ed25519 key ids and malformed existing signatures are refused', () => {
    expect(() => signJson({}, 'domain', 'curve25519:1', signer)).toThrow(/only ed25519/);
    expect(() => signJson({ signatures: 'x' }, 'domain', 'ed25519:1', signer)).toThrow(/not an object/);
    expect(() => signJson({ signatures: { d: [] } }, 'domain', 'ed25519:1', signer)).toThrow(/not an object/);
    expect(() => signJson({ signatures: { ok: {}, d: 'x' } }, 'domain', 'ed25519:1', signer)).toThrow(/not an object/);
  });

  test('values outside canonical JSON cannot be signed', () => {
    expect(() => signJson({ a: 1.5 }, 'domain', 'ed25519:1', signer)).toThrow(/not an integer/);
  });
});

describe('verifyJsonSignature: false, never an exception, for anything wrong', () => {
  const signer = SPEC_SIGNER;
  // Signed inside each test, not at collection: a mutant that breaks signing then fails tests, not the whole file.
  const vector = () => {
    const signed = signJson({ one: 1, two: 'Two' }, 'domain', 'ed25519:1', signer);
    return { signed, sig: signed.signatures.domain!['ed25519:1']! };
  };
  type Signed = ReturnType<typeof vector>;
  const cases: Array<[string, (v: Signed) => [object, string, string, Uint8Array]]> = [
    ['no signatures', (_v) => [{ one: 1, two: 'Two' }, 'domain', 'ed25519:1', signer.publicKey]],
    ['signatures not an object', (v) => [{ ...v.signed, signatures: 'x' }, 'domain', 'ed25519:1', signer.publicKey]],
    ['no entry for the entity', (v) => [v.signed, 'elsewhere', 'ed25519:1', signer.publicKey]],
    ['no entry for the key', (v) => [v.signed, 'domain', 'ed25519:2', signer.publicKey]],
    ['signatures null', (v) => [{ ...v.signed, signatures: null }, 'domain', 'ed25519:1', signer.publicKey]],
    ['entity maps to an array', (v) => [{ ...v.signed, signatures: { domain: [v.sig] } }, 'domain', 'ed25519:1', signer.publicKey]],
    ['entity maps to null', (v) => [{ ...v.signed, signatures: { domain: null } }, 'domain', 'ed25519:1', signer.publicKey]],
    ['signature not a string', (v) => [{ ...v.signed, signatures: { domain: { 'ed25519:1': 5 } } }, 'domain', 'ed25519:1', signer.publicKey]],
    ['signature not Base64', (v) => [{ ...v.signed, signatures: { domain: { 'ed25519:1': '!!!' } } }, 'domain', 'ed25519:1', signer.publicKey]],
    ['signature too short', (v) => [{ ...v.signed, signatures: { domain: { 'ed25519:1': v.sig.slice(0, 40) } } }, 'domain', 'ed25519:1', signer.publicKey]],
    ['content changed', (v) => [{ ...v.signed, two: 'Three' }, 'domain', 'ed25519:1', signer.publicKey]],
    ['content not canonical-encodable', (v) => [{ ...v.signed, x: 0.5 }, 'domain', 'ed25519:1', signer.publicKey]],
    ['another key', (v) => [v.signed, 'domain', 'ed25519:1', createSigner(new Uint8Array(32)).publicKey]],
    ['a public key of the wrong length', (v) => [v.signed, 'domain', 'ed25519:1', signer.publicKey.subarray(0, 31)]],
    ['an unknown algorithm', (v) => [{ ...v.signed, signatures: { domain: { 'foo:1': v.sig } } }, 'domain', 'foo:1', signer.publicKey]],
    ['an inherited entity name (toString)', (v) => [v.signed, 'toString', 'ed25519:1', signer.publicKey]],
    ['an inherited entity name', (v) => [v.signed, '__proto__', 'ed25519:1', signer.publicKey]],
  ];

  test.each(cases)('%s', (_name, build) => {
    const [object, entity, keyId, publicKey] = build(vector());
    expect(verifyJsonSignature(object, entity, keyId, publicKey)).toBe(false);
  });

  test('signatureOf gives only a string found at that entity and key', () => {
    expect(signatureOf({ signatures: { domain: { 'ed25519:1': 5 } } }, 'domain', 'ed25519:1')).toBeUndefined();
    expect(signatureOf({ signatures: { domain: null } }, 'domain', 'ed25519:1')).toBeUndefined();
    expect(signatureOf({ signatures: { domain: { 'ed25519:1': 'AAAA' } } }, 'domain', 'ed25519:1')).toBe('AAAA');
  });

  test('the untouched object verifies (so the cases above fail for their own reason)', () => {
    const { signed, sig } = vector();
    expect(verifyJsonSignature(signed, 'domain', 'ed25519:1', signer.publicKey)).toBe(true);
    expect(verifyJsonSignature({ ...signed, signatures: { domain: { 'ed25519:1': `${sig}==` } } }, 'domain', 'ed25519:1', signer.publicKey)).toBe(true);
  });
});

describeWithPython('interop with Synapse signedjson', () => {
  const objects = [
    {},
    { one: 1, two: 'Two' },
    { 本: 2, 日: 1, '\u{1F600}': ['\uE000', null, true, -9007199254740991], nested: { z: { y: 'x\n"\\' } } },
    { unsigned: { age_ts: 12 }, method: 'GET', uri: '/_matrix/federation/v1/media/download/abc?x=1', origin: 'a.example', destination: 'b.example' },
  ];

  test('python signedjson verifies our signatures', async () => {
    const signer = createSigner(new Uint8Array(32).map((_, i) => i * 7));
    const signed = objects.map((object) => signJson(object, 'origin.example', 'ed25519:ab_1', signer));
    const script = [
      'import sys, json, base64',
      'from signedjson.key import decode_verify_key_bytes',
      'from signedjson.sign import verify_signed_json',
      'request = json.load(sys.stdin)',
      'key = decode_verify_key_bytes("ed25519:ab_1", base64.b64decode(request["publicKey"]))',
      'for obj in request["objects"]:',
      '    verify_signed_json(obj, "origin.example", key)',
      '    print("ok")',
    ].join('\n');
    const output = await runPython(script, JSON.stringify({ publicKey: Buffer.from(signer.publicKey).toString('base64'), objects: signed }));
    expect(output.trim().split('\n')).toEqual(objects.map(() => 'ok'));
  });

  test('python signedjson rejects a signature we tampered with (the check above can fail)', async () => {
    const signer = createSigner(new Uint8Array(32).fill(3));
    const signed = signJson({ a: 1 }, 'origin.example', 'ed25519:k', signer);
    const script = [
      'import sys, json, base64',
      'from signedjson.key import decode_verify_key_bytes',
      'from signedjson.sign import verify_signed_json, SignatureVerifyException',
      'request = json.load(sys.stdin)',
      'key = decode_verify_key_bytes("ed25519:k", base64.b64decode(request["publicKey"]))',
      'try:',
      '    verify_signed_json(request["object"], "origin.example", key)',
      '    print("verified")',
      'except SignatureVerifyException:',
      '    print("rejected")',
    ].join('\n');
    const tampered = { ...signed, a: 2 };
    const output = await runPython(script, JSON.stringify({ publicKey: Buffer.from(signer.publicKey).toString('base64'), object: tampered }));
    expect(output.trim()).toBe('rejected');
  });

  test("we verify python signedjson's signatures, and reject them once altered", async () => {
    const script = [
      'import sys, json',
      'from signedjson.key import decode_signing_key_base64, encode_verify_key_base64, get_verify_key',
      'from signedjson.sign import sign_json',
      'key = decode_signing_key_base64("ed25519", "py1", "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA0")',
      'objects = json.load(sys.stdin)',
      'print(json.dumps({"publicKey": encode_verify_key_base64(get_verify_key(key)), "signed": [sign_json(o, "py.example", key) for o in objects]}))',
    ].join('\n');
    const result = JSON.parse(await runPython(script, JSON.stringify(objects))) as { publicKey: string; signed: object[] };
    const publicKey = decodeBase64(result.publicKey);
    expect(result.signed).toHaveLength(objects.length);
    for (const signed of result.signed) {
      expect(verifyJsonSignature(signed, 'py.example', 'ed25519:py1', publicKey)).toBe(true);
      expect(verifyJsonSignature({ ...signed, added: 1 }, 'py.example', 'ed25519:py1', publicKey)).toBe(false);
    }
  });
});
