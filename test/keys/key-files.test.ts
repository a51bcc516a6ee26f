import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  formatKeyFile,
  generateKeyVersion,
  generateSigningKey,
  KEY_FILE_FORMATS,
  KeyFileError,
  keyId,
  parseKeyFile,
  readKeyFile,
  writeKeyFile,
  type KeyFileFormat,
  type SigningKey,
} from '../../src/keys/key-files.js';
import { encodeBase64 } from '../../src/matrix/base64.js';
import { publicKeyFromSeed } from '../../src/matrix/ed25519.js';
import { runPython } from '../helpers/python-worker.js';
import { describeWithPython } from '../helpers/python-available.js';

interface Vector {
  file: string;
  keyId: string;
  publicKey: string;
}
const vectors = JSON.parse(readFileSync('test/fixtures/key-files.json', 'utf8')) as Record<KeyFileFormat, Vector>;
const FORMATS: KeyFileFormat[] = ['synapse', 'dendrite', 'mmr'];
const dir = mkdtempSync(join(tmpdir(), 'key-files-'));

function vectorKey(format: KeyFileFormat): SigningKey {
  return parseKeyFile(vectors[format].file, `${format}.key`).keys[0]!;
}

function publicKeyOf(key: SigningKey): string {
  return encodeBase64(publicKeyFromSeed(key.seed));
}

function writeTemp(name: string, content: string | Buffer): string {
  const file = join(dir, name);
  writeFileSync(file, content);
  return file;
}

/** The failure from parsing `text`, asserting it names the file and never shows the seed. */
function parseFailure(text: string, seedBase64 = 'wdSWsTNSOmMuNA1Ej6JUyeNbiBEt5jexHmVs7mHKZVc'): string {
  let failure: unknown;
  try {
    parseKeyFile(text, 'broken.key');
  } catch (error) {
    failure = error;
  }
  expect(failure).toBeInstanceOf(KeyFileError);
  const message = (failure as KeyFileError).message;
  expect(message.startsWith('broken.key: ')).toBe(true);
  expect(message).not.toContain(seedBase64.slice(0, 16));
  return message;
}

describe('test vectors', () => {
  test.each(FORMATS)('%s vector parses to its key ID, and its seed gives the stated public key', (format) => {
    const parsed = parseKeyFile(vectors[format].file, `${format}.key`);
    expect(parsed.format).toBe(format);
    expect(parsed.keys).toHaveLength(1);
    expect(keyId(parsed.keys[0]!)).toBe(vectors[format].keyId);
    expect(publicKeyOf(parsed.keys[0]!)).toBe(vectors[format].publicKey);
  });

  test.each(FORMATS)('%s vector round-trips byte for byte', (format) => {
    expect(formatKeyFile(parseKeyFile(vectors[format].file, 'x').keys, format)).toBe(vectors[format].file);
  });

  test.each(FORMATS.flatMap((from) => FORMATS.map((to) => [from, to] as const)))('converting %s to %s keeps seed and version', (from, to) => {
    const original = vectorKey(from);
    const converted = parseKeyFile(formatKeyFile([original], to), 'converted.key');
    expect(converted.format).toBe(to);
    expect(converted.keys).toEqual([original]);
    expect(publicKeyOf(converted.keys[0]!)).toBe(vectors[from].publicKey);
  });
});

// Keys are parsed inside each test: parsing at collection would fail the whole file under a mutation.
describe('several keys in one file', () => {
  test.each(FORMATS)('%s keeps every key in order', (format) => {
    const keys = FORMATS.map(vectorKey);
    const parsed = parseKeyFile(formatKeyFile(keys, format), 'many.key');
    expect(parsed.format).toBe(format);
    expect(parsed.keys).toEqual(keys);
  });

  test('synapse puts one key per line, as the single-key vectors are written', () => {
    const keys = FORMATS.map(vectorKey);
    expect(formatKeyFile(keys, 'synapse')).toBe(`${vectors.synapse.file}\n${formatKeyFile([keys[1]!], 'synapse')}\n${formatKeyFile([keys[2]!], 'synapse')}`);
  });

  test('PEM formats concatenate whole blocks, as the single-key vectors are written', () => {
    const keys = FORMATS.map(vectorKey);
    expect(formatKeyFile([keys[1]!, { ...keys[1]!, version: 'x' }], 'dendrite')).toBe(
      vectors.dendrite.file + vectors.dendrite.file.replace('1Pu3u3\n', 'x\n'),
    );
    expect(formatKeyFile([keys[2]!, { ...keys[2]!, version: 'y' }], 'mmr')).toBe(vectors.mmr.file + vectors.mmr.file.replace('e5d0oC\n', 'y\n'));
  });
});

describe('lenient input', () => {
  const [, version, seed] = vectors.synapse.file.split(' ') as [string, string, string];

  test.each([
    ['padded base64', `ed25519 ${version} ${seed}=`],
    ['trailing newline (as signedjson writes)', `${vectors.synapse.file}\n`],
    ['CRLF, blank lines and trailing whitespace', `\r\n\r\n${vectors.synapse.file}  \t\r\n\r\n`],
    ['several spaces between fields', `ed25519   ${version}\t${seed}`],
    ['a UTF-8 byte order mark', `\uFEFF${vectors.synapse.file}`],
  ])('synapse: %s', (_name, text) => {
    expect(parseKeyFile(text, 'k')).toEqual({ format: 'synapse', keys: [vectorKey('synapse')] });
  });

  test.each(['dendrite', 'mmr'] as const)('%s: CRLF, surrounding blank lines and no final newline', (format) => {
    const text = `\n\n${vectors[format].file.trimEnd().replaceAll('\n', '\r\n')}`;
    expect(parseKeyFile(text, 'k')).toEqual({ format, keys: [vectorKey(format)] });
  });

  test.each(['dendrite', 'mmr'] as const)('%s: unpadded body wrapped over lines', (format) => {
    const body = vectors[format].file.match(/\n\n(.*)\n/)![1]!;
    const text = vectors[format].file.replace(body, `${body.slice(0, 20)}\n${body.slice(20).replace(/=+$/, '')}`);
    expect(parseKeyFile(text, 'k').keys).toEqual([vectorKey(format)]);
  });
});

describe('rejected input names the file and the problem, never the key', () => {
  const [, version, seed] = vectors.synapse.file.split(' ') as [string, string, string];
  const dendriteBody = vectors.dendrite.file.match(/\n\n(.*)\n/)![1]!;

  test.each([
    ['whitespace only', ' \n\n', /contains no signing keys/],
    ['too few fields, with the line number', `${vectors.synapse.file}\ned25519 ${seed}`, /line 2: expected "ed25519 <version> <base64 seed>", found 2 fields/],
    ['a bare seed', seed, /line 1: .*found 1 fields/],
    ['another algorithm', `curve25519 ${version} ${seed}`, /line 1: unsupported algorithm/],
    ['a version outside [a-zA-Z0-9_]', `ed25519 a-b ${seed}`, /line 1: key version must be made of \[a-zA-Z0-9_\]/],
    ['URL-safe base64', `ed25519 ${version} ${seed.replace(/[+/]/g, '_')}_`, /line 1: key is not valid Base64/],
    ['a short seed', `ed25519 ${version} ${seed.slice(0, 40)}`, /line 1: key is 30 bytes, expected 32/],
    ['a 64-byte NaCl secret key', `ed25519 ${version} ${Buffer.alloc(64, 7).toString('base64')}`, /line 1: key is 64 bytes, expected 32/],
    ['a version twice', `${vectors.synapse.file}\n${vectors.synapse.file}`, /key version "a_RVfN" appears more than once/],
  ])('synapse: %s', (_name, text, problem) => {
    expect(parseFailure(text, seed)).toMatch(problem);
  });

  test.each([
    ['another PEM type', vectors.dendrite.file.replaceAll('MATRIX PRIVATE KEY', 'PRIVATE KEY'), /line 1: unsupported PEM block "PRIVATE KEY"/],
    ['a missing END line', vectors.dendrite.file.replace('-----END MATRIX PRIVATE KEY-----\n', ''), /line 1: "MATRIX PRIVATE KEY" block has no "-----END MATRIX PRIVATE KEY-----" line/],
    ['a mismatched END line', vectors.dendrite.file.replace('END MATRIX', 'END MMR'), /line 5: expected "-----END MATRIX PRIVATE KEY-----"/],
    ['text outside blocks', `${vectors.dendrite.file}junk\n`, /line 6: expected a "-----BEGIN ...-----" line/],
    ['a missing Key-ID', vectors.dendrite.file.replace('Key-ID: ed25519:1Pu3u3\n', ''), /line 1: missing Key-ID header/],
    ['a non-ed25519 Key-ID', vectors.dendrite.file.replace('ed25519:', 'curve25519:'), /line 1: Key-ID must be "ed25519:"/],
    ['a Key-ID header twice', vectors.dendrite.file.replace('Key-ID: ed25519:1Pu3u3\n', 'Key-ID: ed25519:a\nKey-ID: ed25519:b\n'), /line 3: header "Key-ID" appears twice/],
    ['a bad body', vectors.dendrite.file.replace(dendriteBody, `${dendriteBody.slice(0, 30)}!`), /line 1: key is not valid Base64/],
    ['dendrite and MMR blocks mixed', vectors.dendrite.file + vectors.mmr.file, /line 6: file mixes Dendrite and MMR key blocks/],
    ['an MMR block without Version', vectors.mmr.file.replace('Version: 1\n', ''), /line 1: unsupported MMR key format version/],
    ['an MMR block of Version 2', vectors.mmr.file.replace('Version: 1\n', 'Version: 2\n'), /line 1: unsupported MMR key format version/],
  ])('PEM: %s', (_name, text, problem) => {
    expect(parseFailure(text, dendriteBody)).toMatch(problem);
  });

  test('formatKeyFile refuses keys no reader would accept', () => {
    const key = vectorKey('mmr');
    expect(() => formatKeyFile([], 'mmr')).toThrow(RangeError);
    expect(() => formatKeyFile([{ ...key, version: 'a:b' }], 'synapse')).toThrow(/version/);
    expect(() => formatKeyFile([{ ...key, seed: key.seed.subarray(1) }], 'dendrite')).toThrow(/32 bytes/);
  });
});

describe('generated keys', () => {
  test('versions are 6 characters of [a-zA-Z0-9] and fresh keys differ', () => {
    const a = generateSigningKey();
    const b = generateSigningKey();
    expect(a.version).toMatch(/^[a-zA-Z0-9]{6}$/);
    expect(a.seed).toHaveLength(32);
    expect(a.version).not.toBe(b.version);
    expect(Buffer.from(a.seed).equals(Buffer.from(b.seed))).toBe(false);
  });

  test('every character of [a-zA-Z0-9] is equally likely (no modulo bias)', () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 10_000; i++) {
      const version = generateKeyVersion();
      expect(version).toMatch(/^[a-zA-Z0-9]{6}$/);
      for (const char of version) counts.set(char, (counts.get(char) ?? 0) + 1);
    }
    expect(counts.size).toBe(62);
    const expected = 60_000 / 62;
    const chiSquare = [...counts.values()].reduce((sum, count) => sum + (count - expected) ** 2 / expected, 0);
    // 61 degrees of freedom: 140 is far out in the tail (p < 1e-7); `byte % 62` would score about 400.
    expect(chiSquare).toBeLessThan(140);
  });
});

describe('reading and writing files', () => {
  test.each(FORMATS)('reads a %s file', async (format) => {
    const parsed = await readKeyFile(writeTemp(`read-${format}.key`, vectors[format].file));
    expect(parsed.format).toBe(format);
    expect(keyId(parsed.keys[0]!)).toBe(vectors[format].keyId);
  });

  test.each([
    ['a missing file', () => join(dir, 'missing.key'), 'cannot read: no such file or directory'],
    ['a directory', () => mkdtempSync(join(dir, 'a-dir-')), 'cannot read: is a directory'],
    ['an empty file', () => writeTemp('empty.key', ''), 'file is empty'],
    ['a binary file', () => writeTemp('binary.key', Buffer.from([0xff, 0xfe, 0x00, 0x80])), 'not a text file (invalid UTF-8)'],
    ['a corrupt file', () => writeTemp('corrupt.key', 'ed25519 abc\n'), 'line 1: expected "ed25519 <version> <base64 seed>", found 2 fields'],
  ])('names the file: %s', async (_name, makePath, problem) => {
    const path = makePath();
    await expect(readKeyFile(path)).rejects.toThrow(new KeyFileError(path, problem).message);
  });

  test.each(KEY_FILE_FORMATS)('writes %s owner-only, replacing an existing file whole', async (format) => {
    const path = writeTemp(`written-${format}.key`, 'old content that is longer than any key file would ever be '.repeat(10));
    const keys = [generateSigningKey(), generateSigningKey()];
    await writeKeyFile(path, keys, format);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readFileSync(path, 'utf8')).toBe(formatKeyFile(keys, format));
    expect((await readKeyFile(path)).keys).toEqual(keys);
  });

  test('a failed write names the file and leaves nothing behind', async () => {
    const target = mkdtempSync(join(dir, 'fail-'));
    mkdirSync(join(target, 'occupied.key'));
    const path = join(target, 'occupied.key');
    await expect(writeKeyFile(path, [generateSigningKey()], 'mmr')).rejects.toThrow(`${path}: cannot write:`);
    await expect(writeKeyFile(join(target, 'no-such-dir', 'k.key'), [generateSigningKey()], 'mmr')).rejects.toThrow(
      'no-such-dir/k.key: cannot write: no such file or directory',
    );
    expect(readdirSync(target)).toEqual(['occupied.key']);
  });
});

describeWithPython("interoperability with Synapse's signedjson", () => {
  test('signedjson reads our synapse file: same versions and public keys', async () => {
    const keys = [vectorKey('synapse'), generateSigningKey(), generateSigningKey()];
    const path = writeTemp('for-synapse.key', formatKeyFile(keys, 'synapse'));
    const script = [
      'import sys, json, signedjson.key as k',
      'keys = k.read_signing_keys(open(sys.argv[1]))',
      'print(json.dumps([[key.version, k.encode_verify_key_base64(k.get_verify_key(key))] for key in keys]))',
    ].join('\n');
    const fromPython = JSON.parse(await runPython(script, '', [path])) as [string, string][];
    expect(fromPython).toEqual(keys.map((key) => [key.version, publicKeyOf(key)]));
  });

  test('we read a file signedjson wrote, deriving the public key python reports', async () => {
    const path = join(dir, 'from-synapse.key');
    const script = [
      'import sys, signedjson.key as k',
      "key = k.generate_signing_key('abc123')",
      "k.write_signing_keys(open(sys.argv[1], 'w'), [key])",
      'print(k.encode_verify_key_base64(k.get_verify_key(key)))',
    ].join('\n');
    const publicKey = (await runPython(script, '', [path])).trim();
    const parsed = await readKeyFile(path);
    expect(parsed.format).toBe('synapse');
    expect(parsed.keys.map(keyId)).toEqual(['ed25519:abc123']);
    expect(publicKeyOf(parsed.keys[0]!)).toBe(publicKey);
  });
});
