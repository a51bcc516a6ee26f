import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MasterKey } from '../../src/keys/master-key.js';

describe('master key', () => {
  const key = MasterKey.parse(randomBytes(32).toString('hex'), 'test');

  test('round trips and binds the ciphertext to its context', () => {
    const seed = randomBytes(32);
    const sealed = key.encrypt(seed, 'signing_keys:a.org:ed25519:x');
    expect(sealed.includes(seed)).toBe(false);
    expect(key.decrypt(sealed, 'signing_keys:a.org:ed25519:x')).toEqual(seed);
    expect(() => key.decrypt(sealed, 'signing_keys:b.org:ed25519:x')).toThrow(/does not decrypt/);
  });

  test('a tampered ciphertext or another master key fails', () => {
    const sealed = key.encrypt(Buffer.from('secret'), 'c');
    sealed[sealed.length - 1]! ^= 1;
    expect(() => key.decrypt(sealed, 'c')).toThrow(/does not decrypt/);
    const other = MasterKey.parse(randomBytes(32).toString('base64'), 'test');
    expect(() => other.decrypt(key.encrypt(Buffer.from('secret'), 'c'), 'c')).toThrow(/does not decrypt/);
  });

  test('a key of the wrong size is refused without echoing it', () => {
    expect(() => MasterKey.parse('c2hvcnQ', 'masterKey')).toThrow('masterKey: the master key must be 32 bytes, as 64 hex digits or Base64');
  });

  test('created on first use with mode 0600, then read back', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'mk-')), 'sub', 'master.key');
    const first = MasterKey.loadOrCreateFile(file);
    expect(first.created).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(Buffer.from(readFileSync(file, 'utf8').trim(), 'base64')).toHaveLength(32);
    const second = MasterKey.loadOrCreateFile(file);
    expect(second.created).toBe(false);
    expect(second.key.decrypt(first.key.encrypt(Buffer.from('x'), 'c'), 'c').toString()).toBe('x');
  });
});
