import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../src/cli/combine_signing_keys.js';
import { formatKeyFile, generateSigningKey, keyId, parseKeyFile, readKeyFile, type KeyFileFormat } from '../../src/keys/key-files.js';
import { runPython } from '../helpers/python-worker.js';
import { testWithPython } from '../helpers/python-available.js';

const vectors = JSON.parse(readFileSync('test/fixtures/key-files.json', 'utf8')) as Record<KeyFileFormat, { file: string; keyId: string; publicKey: string }>;
const FORMATS: KeyFileFormat[] = ['synapse', 'dendrite', 'mmr'];

async function combine(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await run(argv, { stdout: { write: (text: string) => (stdout += text) }, stderr: { write: (text: string) => (stderr += text) } });
  return { code, stdout, stderr };
}

/** A fresh directory holding the three vector files, named after their formats. */
function vectorDir(): { dir: string; files: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'combine-keys-'));
  const files = FORMATS.map((format) => {
    const file = join(dir, `${format}.key`);
    writeFileSync(file, vectors[format].file);
    return file;
  });
  return { dir, files };
}

describe('combine_signing_keys', () => {
  test.each(FORMATS)('combines files of all three formats into one %s file, in order', async (format) => {
    const { dir, files } = vectorDir();
    const output = join(dir, 'combined.key');
    const result = await combine('-format', format, '-output', output, ...files);
    expect(result.code).toBe(0);
    const parsed = await readKeyFile(output);
    expect(parsed.format).toBe(format);
    expect(parsed.keys.map(keyId)).toEqual(FORMATS.map((f) => vectors[f].keyId));
    expect(statSync(output).mode & 0o777).toBe(0o600);
    for (const file of files) expect(result.stderr).toContain(`Reading ${file}`);
  });

  test('the output is the input files joined, in their own format', async () => {
    const { dir, files } = vectorDir();
    const dendrite = join(dir, 'dendrite-copy.key');
    writeFileSync(dendrite, vectors.dendrite.file.replaceAll('1Pu3u3', 'second'));
    const output = join(dir, 'out.key');
    expect((await combine('-format', 'dendrite', '-output', output, files[1]!, dendrite)).code).toBe(0);
    expect(readFileSync(output, 'utf8')).toBe(vectors.dendrite.file + readFileSync(dendrite, 'utf8'));
  });

  test('keeps the order of keys inside each file too', async () => {
    const { dir, files } = vectorDir();
    const extra = [generateSigningKey(), generateSigningKey()];
    const many = join(dir, 'many.key');
    writeFileSync(many, formatKeyFile(extra, 'dendrite'));
    const output = join(dir, 'out.key');
    expect((await combine('-format', 'mmr', '-output', output, files[2]!, many, files[0]!)).code).toBe(0);
    expect((await readKeyFile(output)).keys).toEqual([parseKeyFile(vectors.mmr.file, 'v').keys[0], ...extra, parseKeyFile(vectors.synapse.file, 'v').keys[0]]);
  });

  testWithPython("Synapse's signedjson reads a combined synapse file", async () => {
    const { dir, files } = vectorDir();
    const output = join(dir, 'homeserver.signing.key');
    expect((await combine('-format=synapse', '-output=' + output, ...files)).code).toBe(0);
    const script = [
      'import sys, json, signedjson.key as k',
      'print(json.dumps([[key.version, k.encode_verify_key_base64(k.get_verify_key(key))] for key in k.read_signing_keys(open(sys.argv[1]))]))',
    ].join('\n');
    const fromPython = JSON.parse(await runPython(script, '', [output])) as [string, string][];
    expect(fromPython).toEqual(FORMATS.map((f) => [vectors[f].keyId.slice('ed25519:'.length), vectors[f].publicKey]));
  });

  test('flags may follow the files, and "--" ends the flags', async () => {
    const { dir, files } = vectorDir();
    const dashed = join(dir, '-dashed.key');
    writeFileSync(dashed, formatKeyFile([generateSigningKey()], 'synapse'));
    const output = join(dir, 'out.key');
    const result = await combine(files[0]!, '--format', 'dendrite', '--output', output, '--', files[1]!, dashed);
    expect(result.code).toBe(0);
    expect((await readKeyFile(output)).keys).toHaveLength(3);
  });

  test('-output - writes the combined file to stdout', async () => {
    const { files } = vectorDir();
    const result = await combine('-format', 'synapse', '-output', '-', files[0]!, files[2]!);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`${vectors.synapse.file}\n${formatKeyFile(parseKeyFile(vectors.mmr.file, 'v').keys, 'synapse')}`);
  });

  test('refuses a version seen twice, naming both files but no key, and writes nothing', async () => {
    const { dir, files } = vectorDir();
    const copy = join(dir, 'copy-of-synapse.key');
    const other = generateSigningKey();
    writeFileSync(copy, formatKeyFile([other, { ...other, version: 'a_RVfN' }], 'mmr'));
    const output = join(dir, 'out.key');
    const result = await combine('-output', output, files[0]!, files[1]!, copy);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`Duplicate key version 'a_RVfN': found in '${files[0]}' and again in '${copy}'`);
    expect(result.stderr).not.toContain(vectors.synapse.file.split(' ')[2]!.slice(0, 16));
    expect(result.stderr).not.toContain(Buffer.from(other.seed).toString('base64').slice(0, 16));
    expect(readdirSync(dir).sort()).toEqual(['copy-of-synapse.key', 'dendrite.key', 'mmr.key', 'synapse.key']);
  });

  test.each([
    ['missing', null, 'cannot read: no such file or directory'],
    ['empty', '', 'file is empty'],
    ['corrupt', 'ed25519 a_RVfN\n', 'line 1: expected "ed25519 <version> <base64 seed>", found 2 fields'],
  ])('a %s input among good ones is named, and nothing is written', async (_name, content, problem) => {
    const { dir, files } = vectorDir();
    const bad = join(dir, 'bad.key');
    if (content !== null) writeFileSync(bad, content);
    const before = readdirSync(dir).sort();
    const result = await combine('-output', join(dir, 'out.key'), files[0]!, bad, files[1]!);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`${bad}: ${problem}`);
    expect(readdirSync(dir).sort()).toEqual(before);
  });

  test.each([
    [[], 'no key files given to combine'],
    [['-format', 'json', 'a.key'], "Unknown output format 'json'. Try 'combine_signing_keys -help' for information."],
    [['-input', 'a.key'], 'flag provided but not defined: -input'],
    [['a.key', '-output'], 'flag needs an argument: -output'],
  ])('usage error %j exits 2', async (argv, message) => {
    const result = await combine(...argv);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(message);
    expect(result.stderr).toContain('Usage of combine_signing_keys:');
  });
});
