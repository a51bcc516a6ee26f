// Key files at their edges: the synchronous reader start-up uses, each file-system failure named as such,
// no file handle left open, and the messages of refusals the main suite checks only by type.
import { mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  formatKeyFile,
  generateSigningKey,
  isKeyFileFormat,
  KeyFileError,
  parseKeyFile,
  readKeyFile,
  readKeyFileSync,
  writeKeyFile,
  type KeyFileFormat,
} from '../../src/keys/key-files.js';

function vectors(): Record<KeyFileFormat, { file: string; keyId: string; publicKey: string }> {
  return JSON.parse(readFileSync('test/fixtures/key-files.json', 'utf8')) as Record<KeyFileFormat, { file: string; keyId: string; publicKey: string }>;
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'key-edges-'));
}

describe('the synchronous reader', () => {
  test.each(['synapse', 'dendrite', 'mmr'] as const)('reads a %s file to the same keys, by their bytes, as the parser', (format) => {
    const file = join(tempDir(), 'k.key');
    writeFileSync(file, vectors()[format].file);
    const read = readKeyFileSync(file);
    expect(read.format).toBe(format);
    expect(read.keys.map((k) => [k.version, Buffer.from(k.seed).toString('hex')])).toEqual(
      parseKeyFile(vectors()[format].file, 'x').keys.map((k) => [k.version, Buffer.from(k.seed).toString('hex')]),
    );
  });

  test('names the file and the problem, as the asynchronous reader does', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'empty.key'), '');
    for (const [path, problem] of [
      [join(dir, 'missing.key'), 'cannot read: no such file or directory'],
      [join(dir, 'empty.key'), 'file is empty'],
    ] as const) {
      expect(() => readKeyFileSync(path)).toThrow(new KeyFileError(path, problem));
      await expect(readKeyFile(path)).rejects.toThrow(new KeyFileError(path, problem));
    }
  });
});

describe('file-system failures are named', () => {
  test('a parent that is a file, a link loop, and a folder this process may not write to', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'plain'), 'x');
    const under = join(dir, 'plain', 'k.key');
    expect(() => readKeyFileSync(under)).toThrow(new KeyFileError(under, 'cannot read: a parent path is not a directory'));
    await expect(writeKeyFile(under, [generateSigningKey()], 'mmr')).rejects.toThrow(new KeyFileError(under, 'cannot write: a parent path is not a directory'));
    symlinkSync(join(dir, 'loop.key'), join(dir, 'loop.key'));
    // Other codes keep Node's message (which jest's sandbox prefixes with "Error: ": its errors come from another realm).
    await expect(readKeyFile(join(dir, 'loop.key'))).rejects.toThrow(/loop\.key: cannot read: (Error: )?ELOOP: too many symbolic links encountered, open '/);
    // sysfs refuses new files even to root.
    await expect(writeKeyFile('/sys/signing.key', [generateSigningKey()], 'mmr')).rejects.toThrow(new KeyFileError('/sys/signing.key', 'cannot write: permission denied'));
  });

  test('writing closes its file handle', async () => {
    const dir = tempDir();
    const before = readdirSync('/proc/self/fd').length;
    for (let i = 0; i < 5; i++) await writeKeyFile(join(dir, `k${i}.key`), [generateSigningKey()], 'synapse');
    expect(readdirSync('/proc/self/fd').length).toBe(before);
  });
});

describe('refusals, by their messages', () => {
  test('KeyFileError is named as such', () => {
    expect(() => parseKeyFile('', 'k')).toThrow(expect.objectContaining({ name: 'KeyFileError', message: 'k: contains no signing keys' }));
  });

  test('nothing to write', () => {
    expect(() => formatKeyFile([], 'mmr')).toThrow(new RangeError('no signing keys to write'));
  });

  test('an empty Key-ID is reported missing', () => {
    expect(() => parseKeyFile(vectors().dendrite.file.replace('Key-ID: ed25519:1Pu3u3', 'Key-ID:'), 'k')).toThrow(new KeyFileError('k', 'line 1: missing Key-ID header'));
  });

  test('Base64 of an impossible length is refused as Base64', () => {
    expect(() => parseKeyFile('ed25519 a AAAAA', 'k')).toThrow(new KeyFileError('k', 'line 1: key is not valid Base64'));
  });

  test('a byte order mark is dropped only at the start of the file', () => {
    const [, version, seed] = vectors().synapse.file.split(' ');
    // Inside a line it is white space (as JavaScript's \s), so it splits a field in two.
    expect(() => parseKeyFile(`ed25519 ${version!.slice(0, 3)}\uFEFF${version!.slice(3)} ${seed}`, 'k')).toThrow(/found 4 fields/);
    expect(parseKeyFile(`\uFEFFed25519 ${version} ${seed}`, 'k').keys[0]!.version).toBe(version);
  });

  test('only the three formats are formats', () => {
    expect(['mmr', 'synapse', 'dendrite', 'pem', ''].map(isKeyFileFormat)).toEqual([true, true, true, false, false]);
  });
});
