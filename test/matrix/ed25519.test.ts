import { randomBytes } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { decodeBase64, encodeBase64 } from '../../src/matrix/base64.js';
import { createSigner, generateSeed, lazySigner, publicKeyFromSeed, verifySignature } from '../../src/matrix/ed25519.js';

// Decoded inside the test, not at collection: a mutant of decodeBase64 then fails one test, not the whole file.
const specSeed = () => decodeBase64('YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1');

describe('Ed25519', () => {
  test("the spec's test seed gives its public key", () => {
    expect(encodeBase64(publicKeyFromSeed(specSeed()))).toBe('XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI');
    expect(encodeBase64(createSigner(specSeed()).publicKey)).toBe('XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI');
  });

  test('node:crypto signatures equal @noble/curves signatures and each verifies the other', () => {
    for (let i = 0; i < 50; i++) {
      const seed = generateSeed();
      const message = randomBytes(i * 7);
      const signer = createSigner(seed);
      const ours = signer.sign(message);
      const noble = ed25519.sign(message, seed);
      expect(Buffer.from(ours)).toEqual(Buffer.from(noble));
      expect(Buffer.from(signer.publicKey)).toEqual(Buffer.from(publicKeyFromSeed(seed)));
      expect(Buffer.from(publicKeyFromSeed(seed))).toEqual(Buffer.from(ed25519.getPublicKey(seed)));
      expect(ed25519.verify(ours, message, signer.publicKey)).toBe(true);
      expect(verifySignature(publicKeyFromSeed(seed), message, noble)).toBe(true);
    }
  });

  test('a changed message, signature or key does not verify, and malformed input is just false', () => {
    const signer = createSigner(generateSeed());
    const message = Buffer.from('message');
    const signature = signer.sign(message);
    expect(verifySignature(signer.publicKey, message, signature)).toBe(true);
    expect(verifySignature(signer.publicKey, Buffer.from('messagf'), signature)).toBe(false);
    const flipped = Uint8Array.from(signature);
    flipped[10]! ^= 1;
    expect(verifySignature(signer.publicKey, message, flipped)).toBe(false);
    expect(verifySignature(publicKeyFromSeed(generateSeed()), message, signature)).toBe(false);
    expect(verifySignature(signer.publicKey.subarray(1), message, signature)).toBe(false);
    expect(verifySignature(signer.publicKey, message, signature.subarray(1))).toBe(false);
    expect(verifySignature(new Uint8Array(32), message, signature)).toBe(false);
    expect(verifySignature(signer.publicKey, 42 as unknown as Uint8Array, signature)).toBe(false);
  });

  test('a lazy signer reads its seed on the first signature only, then signs as @noble/curves does', () => {
    const seed = generateSeed();
    let loads = 0;
    const signer = lazySigner(ed25519.getPublicKey(seed), () => (loads++, Uint8Array.from(seed)), 'test key');
    expect(loads).toBe(0);
    for (const text of ['one', 'two']) {
      const message = Buffer.from(text);
      expect(Buffer.from(signer.sign(message))).toEqual(Buffer.from(ed25519.sign(message, seed)));
    }
    expect(loads).toBe(1);
  });

  test('a lazy signer wipes the seed it was given once the key is loaded', () => {
    const seed = generateSeed();
    const given = Uint8Array.from(seed);
    const signer = lazySigner(publicKeyFromSeed(seed), () => given, 'test key');
    signer.sign(Buffer.from('m'));
    expect(given).toEqual(new Uint8Array(32));
  });

  test('a lazy signer refuses a seed of another public key, and tries again on the next signature', () => {
    const seed = generateSeed();
    let given = generateSeed();
    const signer = lazySigner(publicKeyFromSeed(seed), () => Uint8Array.from(given), 'test key');
    expect(() => signer.sign(Buffer.from('m'))).toThrow('test key: stored public key does not match');
    given = seed;
    expect(verifySignature(publicKeyFromSeed(seed), Buffer.from('m'), signer.sign(Buffer.from('m')))).toBe(true);
  });

  test('seeds of the wrong length are refused', () => {
    expect(() => createSigner(new Uint8Array(31))).toThrow('Ed25519 seed must be 32 bytes, got 31');
    expect(() => publicKeyFromSeed(new Uint8Array(33))).toThrow('Ed25519 seed must be 32 bytes, got 33');
  });

  test('fresh seeds are 32 random bytes', () => {
    const a = generateSeed();
    expect(a).toHaveLength(32);
    expect(Buffer.from(a).equals(Buffer.from(generateSeed()))).toBe(false);
  });
});
