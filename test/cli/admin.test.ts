// media-repo admin: quarantine, purge (dry run, progress) and usage at a shell, on the same database and
// datastore as the service, recorded in the audit log as "cli".
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { run } from '../../src/cli/media-repo.js';
import { loadConfigFile } from '../../src/config/config.js';
import { createLogger } from '../../src/log.js';
import { closeServices, openServices } from '../../src/service.js';
import { createScratchDatabase, REAL_POSTGRES_URL } from '../helpers/database.js';
import { blobFilesIn, sha256Hex } from '../helpers/media-fixtures.js';

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

const dir = mkdtempSync(join(tmpdir(), 'cli-admin-'));
const configFile = join(dir, 'config.yaml');
const storage = join(dir, 'media');
let scratch: Awaited<ReturnType<typeof createScratchDatabase>> | undefined;

beforeAll(async () => {
  scratch = REAL_POSTGRES_URL ? await createScratchDatabase() : undefined;
  writeFileSync(configFile, [
    `dataDir: ${dir}`, 'logLevel: silent', `masterKey: "${'cd'.repeat(32)}"`, scratch ? `database: {url: "${scratch.url}"}` : '',
    'homeservers: [{name: a.example, clientApi: "http://127.0.0.1:9"}]',
  ].join('\n'));
  const services = await openServices(loadConfigFile(configFile), createLogger('silent'));
  try {
    for (let i = 0; i < 250; i++) {
      const blob = await services.datastores.forKind('local_media').writeStream(Readable.from([Buffer.from(`upload ${i}`)]), { maxBytes: 1000 });
      await services.media.insertMedia({ serverName: 'a.example', mediaId: `m${i}`, isRemote: false, userId: i < 220 ? '@alice:a.example' : '@bob:a.example', contentType: 'text/plain', uploadName: null }, blob);
    }
  } finally {
    await closeServices(services);
  }
}, 120_000);

afterAll(async () => {
  await scratch?.drop();
});

test('usage lists the homeserver and its biggest users', async () => {
  const { code, stdout } = await runCli(['admin', 'usage', '-config', configFile]);
  expect(code).toBe(0);
  expect(stdout).toMatch(/^a\.example: 250 media, \d+ bytes; 0 thumbnails, 0 bytes\n {2}@alice:a\.example: 220 media/);
});

test('quarantine, then a dry run and a purge with progress, all in the audit log', async () => {
  expect((await runCli(['-config', configFile, 'admin', 'quarantine', 'media', 'mxc://a.example/m241'])).stdout).toBe('quarantined 1 media (mxc://a.example/m241)\n');
  const dry = await runCli(['admin', 'purge', 'user', '@alice:a.example', '-dry-run', 'true', '-config', configFile]);
  expect(dry.stdout).toMatch(/^would purge 220 media, \d+ bytes\n$/);
  expect(blobFilesIn(storage)).toContain(sha256Hex('upload 0'));
  const purge = await runCli(['admin', 'purge', 'user', '@alice:a.example', '-config', configFile]);
  expect(purge.code).toBe(0);
  expect(purge.stderr).toContain('purged 200/220 media\npurged 220/220 media\n');
  expect(purge.stdout).toMatch(/^purged 220 media, \d+ bytes\n$/);
  expect(blobFilesIn(storage)).not.toContain(sha256Hex('upload 0'));
  expect(blobFilesIn(storage)).toContain(sha256Hex('upload 241'));

  const services = await openServices(loadConfigFile(configFile), createLogger('silent'));
  try {
    const audit = await services.db.knex('admin_audit').orderBy('id').select('actor', 'action', 'count', 'dry_run');
    expect(audit).toEqual([
      { actor: 'cli', action: 'quarantine', count: 1, dry_run: false },
      { actor: 'cli', action: 'purge', count: 220, dry_run: true },
      { actor: 'cli', action: 'purge', count: 220, dry_run: false },
    ]);
    expect(await services.media.isQuarantined('a.example', 'm241')).toBe(true);
  } finally {
    await closeServices(services);
  }
});

test('bad command lines exit 2 with the usage and change nothing', async () => {
  for (const argv of [['admin', 'purge', 'remote'], ['admin', 'purge', 'media', 'not-an-mxc'], ['admin', 'frobnicate'], ['admin', 'purge', 'old', '-dry-run', 'maybe']]) {
    const { code, stderr } = await runCli([...argv, '-config', configFile]);
    expect([argv, code]).toEqual([argv, 2]);
    expect(stderr).toContain('Usage of media-repo admin:');
  }
});
