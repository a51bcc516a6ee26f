import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../src/cli/generate_signing_key.js';
import { keyId, parseKeyFile, readKeyFile, type KeyFileFormat, type SigningKey } from '../../src/keys/key-files.js';
import { encodeBase64 } from '../../src/matrix/base64.js';

const vectors = JSON.parse(readFileSync('test/fixtures/key-files.json', 'utf8')) as Record<KeyFileFormat, { file: string; keyId: string }>;
const FORMATS: KeyFileFormat[] = ['mmr', 'synapse', 'dendrite'];

async function generate(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await run(argv, { stdout: { write: (text: string) => (stdout += text) }, stderr: { write: (text: string) => (stderr += text) } });
  return { code, stdout, stderr };
}

function freshDir(): string {
  return mkdtempSync(join(tmpdir(), 'generate-key-'));
}

function seedTexts(key: SigningKey): string[] {
  const padded = Buffer.from(key.seed).toString('base64');
  return [padded, encodeBase64(key.seed), Buffer.from(key.seed).toString('hex')];
}

describe('generate_signing_key', () => {
  test.each(FORMATS)('generates a fresh %s key file, owner-only, and prints only its key ID', async (format) => {
    const dir = freshDir();
    const output = join(dir, 'signing.key');
    const result = await generate('-format', format, '-output', output);
    expect(result.code).toBe(0);
    const parsed = await readKeyFile(output);
    expect(parsed.format).toBe(format);
    expect(parsed.keys).toHaveLength(1);
    const key = parsed.keys[0]!;
    expect(key.version).toMatch(/^[a-zA-Z0-9]{6}$/);
    expect(statSync(output).mode & 0o777).toBe(0o600);
    expect(result.stderr).toContain(`Key ID will be '${keyId(key)}'`);
    expect(result.stderr).toContain(`Done! Signing key written to '${output}' in ${format} format`);
    expect(result.stdout).toBe('');
    for (const secret of seedTexts(key)) expect(result.stderr).not.toContain(secret);
    expect(readdirSync(dir)).toEqual(['signing.key']);
  });

  test('defaults to the mmr format, as matrix-media-repo does', async () => {
    const output = join(freshDir(), 'k');
    expect((await generate('-output', output)).code).toBe(0);
    expect(readFileSync(output, 'utf8')).toMatch(/^-----BEGIN MMR PRIVATE KEY-----\nKey-ID: ed25519:[a-zA-Z0-9]{6}\nVersion: 1\n\n/);
  });

  test('two runs give different keys', async () => {
    const dir = freshDir();
    await generate('-output', join(dir, 'a'));
    await generate('-output', join(dir, 'b'));
    const [a, b] = [(await readKeyFile(join(dir, 'a'))).keys[0]!, (await readKeyFile(join(dir, 'b'))).keys[0]!];
    expect(a.version).not.toBe(b.version);
    expect(Buffer.from(a.seed).equals(Buffer.from(b.seed))).toBe(false);
  });

  test.each([
    ['-format=synapse', '-output=OUT'],
    ['--format', 'synapse', '--output', 'OUT'],
    ['--format=synapse', '-output', 'OUT'],
  ])('accepts Go flag spellings: %s %s', async (...argv) => {
    const output = join(freshDir(), 'k');
    const result = await generate(...argv.map((arg) => arg.replace('OUT', output)));
    expect(result.code).toBe(0);
    expect((await readKeyFile(output)).format).toBe('synapse');
  });

  test('-output - writes the key file to stdout and nothing else there', async () => {
    const result = await generate('-format', 'dendrite', '-output', '-');
    expect(result.code).toBe(0);
    const parsed = parseKeyFile(result.stdout, 'stdout');
    expect(parsed.format).toBe('dendrite');
    expect(result.stderr).toContain(`Key ID will be '${keyId(parsed.keys[0]!)}'`);
  });

  test('replaces an existing output file, as the Go tool does', async () => {
    const output = join(freshDir(), 'k');
    writeFileSync(output, 'previous');
    expect((await generate('-format', 'synapse', '-output', output)).code).toBe(0);
    expect((await readKeyFile(output)).format).toBe('synapse');
    expect(statSync(output).mode & 0o777).toBe(0o600);
  });

  describe('-input converts instead of generating', () => {
    test.each(FORMATS.flatMap((from) => FORMATS.map((to) => [from, to] as const)))('%s to %s, and back byte for byte', async (from, to) => {
      const dir = freshDir();
      const input = join(dir, 'in.key');
      const converted = join(dir, 'converted.key');
      const back = join(dir, 'back.key');
      writeFileSync(input, vectors[from].file);
      const result = await generate('-input', input, '-format', to, '-output', converted);
      expect(result.code).toBe(0);
      expect(result.stderr).toContain(`Key ID will be '${vectors[from].keyId}'`);
      const parsed = await readKeyFile(converted);
      expect(parsed.format).toBe(to);
      expect(parsed.keys.map(keyId)).toEqual([vectors[from].keyId]);
      expect((await generate('-input', converted, '-format', from, '-output', back)).code).toBe(0);
      expect(readFileSync(back, 'utf8')).toBe(vectors[from].file);
    });

    test('takes the first key of a file with several, and says so', async () => {
      const dir = freshDir();
      const input = join(dir, 'two.key');
      writeFileSync(input, `${vectors.synapse.file}\n${vectors.synapse.file.replace('a_RVfN', 'second')}`);
      const result = await generate('-input', input, '-output', join(dir, 'out.key'));
      expect(result.code).toBe(0);
      expect(result.stderr).toContain('Only the first key is converted');
      expect((await readKeyFile(join(dir, 'out.key'))).keys.map(keyId)).toEqual([vectors.synapse.keyId]);
    });

    test.each([
      ['missing', null, 'cannot read: no such file or directory'],
      ['empty', '', 'file is empty'],
      ['corrupt', 'ed25519 abc !!!\n', 'line 1: key is not valid Base64'],
      ['truncated PEM', vectors.mmr.file.slice(0, 60), 'line 1: "MMR PRIVATE KEY" block has no "-----END MMR PRIVATE KEY-----" line'],
    ])('a %s input file is named in the error and no output is written', async (_name, content, problem) => {
      const dir = freshDir();
      const input = join(dir, 'in.key');
      if (content !== null) writeFileSync(input, content);
      const result = await generate('-input', input, '-output', join(dir, 'out.key'));
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(`${input}: ${problem}`);
      expect(readdirSync(dir)).toEqual(content === null ? [] : ['in.key']);
    });
  });

  describe('usage errors exit 2 and write nothing', () => {
    test.each([
      [['-bogus', 'x'], 'flag provided but not defined: -bogus'],
      [['-format'], 'flag needs an argument: -format'],
      [['-format', 'pkcs8'], "Unknown output format 'pkcs8'. Try 'generate_signing_key -help' for information."],
      [['---format=mmr'], 'bad flag syntax: ---format=mmr'],
      [['stray'], 'unexpected argument: stray'],
      [['-output='], "-output must name a file, or '-' for stdout"],
    ])('%j', async (argv, message) => {
      const dir = freshDir();
      const result = await generate('-output', join(dir, 'k'), ...argv);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(message);
      expect(result.stderr).toContain('Usage of generate_signing_key:');
      expect(readdirSync(dir)).toEqual([]);
    });
  });

  test('-help prints the flags with their Go defaults and exits 0', async () => {
    for (const flag of ['-h', '-help', '--help']) {
      const result = await generate(flag);
      expect(result.code).toBe(0);
      expect(result.stderr).toContain('-format string');
      expect(result.stderr).toContain('(default "mmr")');
      expect(result.stderr).toContain('(default "./signing.key")');
    }
  });

  test('a failed write exits 1, names the output file and leaves nothing', async () => {
    const dir = freshDir();
    const output = join(dir, 'missing-dir', 'k.key');
    const result = await generate('-output', output);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`${output}: cannot write: no such file or directory`);
    expect(readdirSync(dir)).toEqual([]);
  });
});
