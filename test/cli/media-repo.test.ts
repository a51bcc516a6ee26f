import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { run } from '../../src/cli/media-repo.js';
import { FilesystemDatastore } from '../../src/storage/filesystem.js';
import { createScratchDatabase, REAL_POSTGRES_URL } from '../helpers/database.js';
import { LoopbackKeyServer, serverKeysResponse, V2 } from '../helpers/key-server.js';
import { withPythonWorker } from '../helpers/python-worker.js';

const vectors = JSON.parse(readFileSync('test/fixtures/key-files.json', 'utf8')) as Record<string, { file: string; keyId: string; publicKey: string }>;

async function runCli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (c: Buffer) => out.push(c));
  stderr.on('data', (c: Buffer) => err.push(c));
  const code = await run(argv, { stdout, stderr });
  return { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
}

describe('media-repo CLI', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cli-'));
  const configFile = join(dir, 'config.yaml');
  let scratch: Awaited<ReturnType<typeof createScratchDatabase>> | undefined;
  let keyServer: LoopbackKeyServer;
  beforeAll(async () => {
    // The embedded database lives in dataDir; with a real PostgreSQL, a database of this test's own.
    scratch = REAL_POSTGRES_URL ? await createScratchDatabase() : undefined;
    writeFileSync(join(dir, 'hs.key'), vectors.mmr!.file);
    // keys.example publishes the key in its /_matrix/key/v2/server, as a combined key file makes it do.
    keyServer = await LoopbackKeyServer.start();
    const { keyId, publicKey, file } = vectors.mmr!;
    const seed = /\n\n(.*)\n-----END/.exec(file)![1]!.replace(/=+$/, '');
    const key = { keyId, publicKey, file, seed, version: keyId.slice('ed25519:'.length) };
    keyServer.answer(V2, await withPythonWorker((python) => serverKeysResponse(python, { serverName: 'keys.example', verifyKeys: [key], validUntilTs: Date.now() + 86_400_000 })));
    writeFileSync(configFile, [
      scratch ? `database: {url: "${scratch.url}"}` : '',
      `masterKey: ${randomBytes(32).toString('hex')}`,
      `federation: {serverOverrides: {keys.example: "${keyServer.url}"}, ipAllowlist: ["127.0.0.1/32"]}`,
      'homeservers:',
      '  - {name: keys.example, clientApi: "http://127.0.0.1:1", signingKeyPath: hs.key}',
      '  - {name: nokey.example, clientApi: "http://127.0.0.1:1"}',
    ].join('\n'));
  });
  afterAll(async () => {
    await keyServer.close();
    await scratch?.drop();
  });

  test('migrate applies the migrations once', async () => {
    const first = await runCli(['-config', configFile, 'migrate']);
    expect(first.code).toBe(0);
    const second = await runCli(['--config', configFile, 'migrate']);
    expect(second).toEqual({ code: 0, stdout: 'already up to date\n', stderr: '' });
  }, 60_000);

  test('keys list prints key ID, public key, scope, the verify_keys fragment and the outbound scheme with why, never the seed', async () => {
    const { code, stdout } = await runCli([`--config=${configFile}`, 'keys', 'list']);
    expect(code).toBe(0);
    const { keyId, publicKey } = vectors.mmr!;
    expect(stdout).toContain(`keys.example\n  key ID:     ${keyId}\n  public key: ${publicKey}\n  scope:      m.requests\n`);
    const fragment = JSON.parse(/verify_keys: (.*)\n/.exec(stdout)![1]!);
    expect(fragment).toEqual({ [keyId]: { key: publicKey, scope: ['m.requests'] } });
    expect(stdout).toContain(`  outbound:   x-matrix (${keyId} is in /_matrix/key/v2/server (not with m.requests at /_matrix/key/unstable/org.matrix.msc4100/server))\n`);
    expect(stdout).toContain('nokey.example\n  no signing key\n');
    const seed = /\n\n(.*)\n-----END/.exec(vectors.mmr!.file)![1]!;
    expect(stdout).not.toContain(seed.slice(0, 20));
  }, 60_000);

  test('storage sweep deletes stored files no row references', async () => {
    const storage = await FilesystemDatastore.open(join(dir, 'data', 'media'));
    const orphan = await storage.writeStream(Readable.from([Buffer.from('orphaned by a crash')]), { maxBytes: 100 });
    await orphan.commit();
    const { code, stdout } = await runCli(['-config', configFile, 'storage', 'sweep']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^checked \d+ stored files, deleted 1 that nothing referenced\ndefault: removed 0 staged copies and 0 unfinished multipart uploads that no live instance owns\nremoved 0 remote fetch locks of dead instances\n$/);
    expect(await storage.has(orphan.sha256)).toBe(false);
  }, 60_000);

  test('a bad config or command is a clear error', async () => {
    writeFileSync(join(dir, 'bad.yaml'), 'homeservers: 3\n');
    const bad = await runCli(['-config', join(dir, 'bad.yaml'), 'serve']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe(`${join(dir, 'bad.yaml')} at /homeservers: must be array\n`);
    const unknown = await runCli(['-config', configFile, 'frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command "frobnicate"/);
    expect(await runCli(['-nope'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/^flag provided but not defined: -nope\nUsage of media-repo:/) });
  });
});
