// kill -9 of the built service in the middle of an upload and of a remote fetch, each leaving a half-written
// staging file; the restart removes it at once (its writer is provably dead), the client gets its media on
// retry, and `storage check` finds nothing wrong: every row's blob right, no orphan, no staging, no stale lock.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { builtMediaRepo } from '../helpers/built-cli.js';
import { createScratchDatabase, REAL_POSTGRES_URL } from '../helpers/database.js';
import { generateSynapseKey } from '../helpers/keys.js';
import { patternBytes } from '../helpers/media-fixtures.js';
import { describeWithPython } from '../helpers/python-available.js';
import { rawRequest } from '../helpers/raw-http.js';
import { startRemoteHomeserver, type RemoteHomeserver } from '../helpers/remote-homeserver.js';

const TOKEN = 'crash-test-token-0123456789';
const HS = 'hs.example';
const REMOTE = 'remote.test';

interface Served { child: ChildProcess; url: string; exited: Promise<unknown> }

describeWithPython('kill -9 mid-write, restart', () => {
  const dir = mkdtempSync(join(tmpdir(), 'crash-safety-'));
  const staging = join(dir, 'media', '.tmp');
  let entry: string;
  let remote: RemoteHomeserver;
  let scratch: Awaited<ReturnType<typeof createScratchDatabase>> | undefined;
  let served: Served | undefined;

  beforeAll(async () => {
    entry = builtMediaRepo();
    const key = await generateSynapseKey('k1');
    remote = await startRemoteHomeserver({ serverName: REMOTE, trustedKeys: { [HS]: { [key.keyId]: key.publicKey } } });
    scratch = REAL_POSTGRES_URL ? await createScratchDatabase() : undefined;
    writeFileSync(join(dir, 'tokens'), `${TOKEN} @bot:${HS}\n`);
    writeFileSync(join(dir, 'hs.key'), key.file);
    writeFileSync(join(dir, 'config.yaml'), JSON.stringify({
      ...(scratch ? { database: { url: scratch.url } } : {}),
      listen: { host: '127.0.0.1', port: 0 }, logLevel: 'info', dataDir: join(dir, 'data'), masterKey: randomBytes(32).toString('hex'),
      homeservers: [{ name: HS, clientApi: 'http://127.0.0.1:1', staticAccessTokens: { file: join(dir, 'tokens') }, signingKeyPath: join(dir, 'hs.key') }],
      federation: { serverOverrides: { [REMOTE]: remote.url }, ipAllowlist: ['127.0.0.1/32'], failureCacheMs: 0 },
      datastores: [{ id: 'default', type: 'file', forKinds: ['all'], opts: { path: join(dir, 'media') } }],
    }));
  }, 180_000);
  afterAll(async () => {
    served?.child.kill('SIGKILL');
    await served?.exited;
    await remote.close();
    await scratch?.drop();
  });

  async function serve(): Promise<Served> {
    const child = spawn(process.execPath, [entry, '-config', join(dir, 'config.yaml'), 'serve'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    let out = '';
    let err = '';
    child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const listening = /"msg":"listening".*?"url":"([^"]+)"|"url":"([^"]+)"[^\n]*"msg":"listening"/.exec(out);
        if (listening) resolve((listening[1] ?? listening[2])!);
      });
      child.once('exit', () => reject(new Error(`serve exited: ${err}`)));
    });
    return { child, url, exited };
  }

  async function kill(): Promise<void> {
    served!.child.kill('SIGKILL');
    await served!.exited;
    served = undefined;
  }

  const stagedFiles = () => {
    mkdirSync(staging, { recursive: true });
    return readdirSync(staging).filter((name) => statSync(join(staging, name)).size > 0);
  };

  async function until(condition: () => boolean, what: string): Promise<void> {
    for (let i = 0; !condition(); i++) {
      if (i > 600) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  const auth = { Host: HS, Authorization: `Bearer ${TOKEN}` };

  async function uploadWhole(bytes: Buffer): Promise<string> {
    const answer = await rawRequest(`${served!.url}/_matrix/media/v3/upload`, { method: 'POST', headers: { ...auth, 'Content-Type': 'application/octet-stream' }, body: bytes });
    expect(answer.status).toBe(200);
    return String(answer.json().content_uri);
  }

  test('an upload killed mid-body: its .part is gone after the restart and the retry stores it', async () => {
    served = await serve();
    const before = stagedFiles();
    const bytes = patternBytes(8 * 1024 * 1024, 3);
    // Half the body, then the client waits: the service is writing the rest to its staging file.
    const upload = request(`${served.url}/_matrix/media/v3/upload`, {
      method: 'POST', headers: { ...auth, 'Content-Type': 'application/octet-stream', 'Content-Length': String(bytes.length) },
    });
    upload.on('error', () => undefined);
    upload.write(bytes.subarray(0, bytes.length / 2));
    await until(() => stagedFiles().some((name) => !before.includes(name)), 'the staging file');
    await kill();

    served = await serve();
    expect(stagedFiles()).toEqual([]);
    const uri = await uploadWhole(bytes);
    const back = await rawRequest(`${served.url}/_matrix/client/v1/media/download/${uri.slice('mxc://'.length)}`, { headers: auth });
    expect(back.status).toBe(200);
    expect(back.body.equals(bytes)).toBe(true);
  }, 180_000);

  test('a remote fetch killed mid-body: its .part and lock are gone after the restart and the retry fetches it', async () => {
    const bytes = patternBytes(4 * 1024 * 1024, 5);
    remote.media.set('stalled', { kind: 'stall', bytes });
    const path = `/_matrix/client/v1/media/download/${REMOTE}/stalled`;
    served ??= await serve();
    const before = stagedFiles();
    const first = rawRequest(`${served.url}${path}`, { headers: auth, allowIncomplete: true }).catch(() => undefined);
    await until(() => stagedFiles().some((name) => !before.includes(name)), 'the staging file');
    await kill();
    await first;

    served = await serve();
    expect(stagedFiles()).toEqual([]);
    remote.media.set('stalled', { kind: 'multipart', bytes });
    const retry = await rawRequest(`${served.url}${path}`, { headers: auth });
    expect(retry.status).toBe(200);
    expect(retry.body.equals(bytes)).toBe(true);
  }, 180_000);

  test('storage check after the crashes: clean', async () => {
    served!.child.kill('SIGTERM');
    await served!.exited;
    served = undefined;
    const check = spawn(process.execPath, [entry, '-config', join(dir, 'config.yaml'), 'storage', 'check'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    check.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const code = await new Promise((resolve) => check.once('exit', resolve));
    expect(out).toBe('checked 2 blobs referenced by rows (size and sha256), 2 stored blobs, staging and fetch locks: 0 problems\n');
    expect(code).toBe(0);
  }, 180_000);
});
