import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MasterKey } from '../../src/keys/master-key.js';

// Each test builds its keys itself: a key parsed at collection would fail the whole file under a mutation.
function newKey(): MasterKey {
  return MasterKey.parse(randomBytes(32).toString('hex'), 'test');
}

/** Whether `a` opens what `b` sealed: the same 32 bytes of key. */
function sameKey(a: MasterKey, b: MasterKey): boolean {
  try {
    return a.decrypt(b.encrypt(Buffer.from('x'), 'c'), 'c').toString() === 'x';
  } catch {
    return false;
  }
}

describe('master key', () => {
  test('round trips and binds the ciphertext to its context', () => {
    const key = newKey();
    const seed = randomBytes(32);
    const sealed = key.encrypt(seed, 'signing_keys:a.org:ed25519:x');
    expect(sealed.includes(seed)).toBe(false);
    expect(key.decrypt(sealed, 'signing_keys:a.org:ed25519:x')).toEqual(seed);
    expect(() => key.decrypt(sealed, 'signing_keys:b.org:ed25519:x')).toThrow(/does not decrypt/);
  });

  test('a tampered ciphertext or another master key fails', () => {
    const key = newKey();
    const sealed = key.encrypt(Buffer.from('secret'), 'c');
    sealed[sealed.length - 1]! ^= 1;
    expect(() => key.decrypt(sealed, 'c')).toThrow(/does not decrypt/);
    const other = MasterKey.parse(randomBytes(32).toString('base64'), 'test');
    expect(() => other.decrypt(key.encrypt(Buffer.from('secret'), 'c'), 'c')).toThrow(/does not decrypt/);
  });

  test('an empty plaintext seals to the shortest valid form (version, nonce, tag) and opens again', () => {
    const key = newKey();
    const sealed = key.encrypt(new Uint8Array(0), 'c');
    expect(sealed).toHaveLength(29);
    expect(key.decrypt(sealed, 'c')).toEqual(Buffer.alloc(0));
  });

  test('another format version or a text shorter than version, nonce and tag is refused as unknown', () => {
    const key = newKey();
    const sealed = key.encrypt(Buffer.from('secret'), 'c');
    const otherVersion = Buffer.from(sealed);
    otherVersion[0] = 2;
    expect(() => key.decrypt(otherVersion, 'c')).toThrow(new Error('encrypted key: unknown format'));
    const empty = key.encrypt(new Uint8Array(0), 'c');
    expect(() => key.decrypt(empty.subarray(0, 28), 'c')).toThrow(new Error('encrypted key: unknown format'));
    expect(() => key.decrypt(empty.subarray(0, 14), 'c')).toThrow(new Error('encrypted key: unknown format'));
  });

  test('hex and Base64 are read with surrounding whitespace; anything after 64 hex digits is refused', () => {
    const bytes = randomBytes(32);
    const hex = bytes.toString('hex');
    const key = MasterKey.parse(hex, 'test');
    expect(sameKey(MasterKey.parse(`  ${hex}\n`, 'test'), key)).toBe(true);
    expect(sameKey(MasterKey.parse(`${bytes.toString('base64')}\n`, 'test'), key)).toBe(true);
    expect(() => MasterKey.parse(`${hex}z`, 'masterKey')).toThrow('masterKey: the master key must be 32 bytes');
    expect(() => MasterKey.parse(`${hex}0`, 'masterKey')).toThrow('masterKey: the master key must be 32 bytes');
  });

  test('a key of the wrong size is refused without echoing it', () => {
    expect(() => MasterKey.parse('c2hvcnQ', 'masterKey')).toThrow('masterKey: the master key must be 32 bytes, as 64 hex digits or Base64');
  });

  test('load names masterKey in its errors: a missing file, a key of the wrong size', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mk-'));
    expect(() => MasterKey.load({ file: join(dir, 'missing.key') })).toThrow(`masterKey: cannot read ${join(dir, 'missing.key')} (ENOENT)`);
    writeFileSync(join(dir, 'short.key'), 'c2hvcnQ\n');
    expect(() => MasterKey.load({ file: join(dir, 'short.key') })).toThrow('masterKey: the master key must be 32 bytes');
  });

  test('created on first use with mode 0600, in folders made as needed, then read back', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'mk-')), 'sub', 'deeper', 'master.key');
    const first = MasterKey.loadOrCreateFile(file);
    expect(first.created).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8')).toMatch(/^[A-Za-z0-9+/]{43}=\n$/);
    const second = MasterKey.loadOrCreateFile(file);
    expect(second.created).toBe(false);
    expect(sameKey(second.key, first.key)).toBe(true);
  });

  test('created in a folder that already exists', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mk-'));
    mkdirSync(join(dir, 'keys'));
    expect(MasterKey.loadOrCreateFile(join(dir, 'keys', 'master.key')).created).toBe(true);
  });

  test('never writes through a link planted where the key file goes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mk-'));
    symlinkSync(join(dir, 'elsewhere.key'), join(dir, 'master.key'));
    expect(() => MasterKey.loadOrCreateFile(join(dir, 'master.key'))).toThrow(/EEXIST/);
    expect(existsSync(join(dir, 'elsewhere.key'))).toBe(false);
  });
});
