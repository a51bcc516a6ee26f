// 100 MiB client download through nginx running the README's offload snippet (the service authorises,
// nginx sends the file) against the same nginx sending the same file directly; curl is the client.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { throughputRow, type BenchCase, type BenchEnvironment, type BenchRow } from '../bench-row.js';
import { median } from '../curl.js';
import { createScratchDatabase, freePort, http, startNginxWith, startServiceProcess, startWhoamiStandIn } from '../media-processes.js';
import { offloadSnippet } from '../nginx-offload.js';

const MiB = 1024 * 1024;
const SIZE = 100 * MiB;
/** A 100 MiB download lasts tens of milliseconds here, and single rounds swing by 2× either way: 7, as for the other 100 MiB cases. */
const ROUNDS = 7;
const TARGET = 0.9;
const NAME = '100 MiB client download, nginx offload';
const run = promisify(execFile);

/** One download by curl, in MiB/s; the status and the byte count must be right. */
async function curlSpeed(url: string, headers: string[] = []): Promise<number> {
  const { stdout } = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{speed_download}', ...headers.flatMap((h) => ['-H', h]), url]);
  const [status, size, speed] = stdout.trim().split(' ').map(Number) as [number, number, number];
  if (status !== 200 || size !== SIZE) throw new Error(`${url}: status ${status}, ${size} bytes`);
  return speed / MiB;
}


/** A file of random bytes, written in 1 MiB pieces; its sha256. */
function writeRandomFile(file: string): string {
  const hash = createHash('sha256');
  writeFileSync(file, '');
  for (let written = 0; written < SIZE; written += MiB) {
    const piece = randomBytes(MiB);
    hash.update(piece);
    writeFileSync(file, piece, { flag: 'a' });
  }
  return hash.digest('hex');
}

async function measure(env: BenchEnvironment): Promise<BenchRow> {
  const mediaPath = join(env.workDir, 'media');
  mkdirSync(mediaPath, { recursive: true });
  const file = join(env.workDir, 'upload.bin');
  const sha256 = writeRandomFile(file);
  const whoami = await startWhoamiStandIn();
  const database = env.databaseUrl ? await createScratchDatabase(env.databaseUrl) : undefined;
  const proxyOffload = '{mode: x-accel-redirect, internalPrefix: /_media_internal/default}';
  const service = await startServiceProcess(join(env.workDir, 'service'), whoami.url, database?.url, false, [
    `datastores: [{id: default, type: file, forKinds: [all], opts: {path: ${JSON.stringify(mediaPath)}, proxyOffload: ${proxyOffload}}}]`,
  ]);
  const [offloadPort, directPort] = [await freePort(), await freePort()];
  const direct = `server {\n    listen 127.0.0.1:${directPort};\n    location /direct/ { alias ${mediaPath}/; }\n}\n`;
  const nginx = await startNginxWith(join(env.workDir, 'nginx'), offloadSnippet({ upstream: service.url, mediaPath, secret: randomBytes(16).toString('hex') }, offloadPort) + direct, `http://127.0.0.1:${offloadPort}`);
  try {
    const auth = { authorization: 'Bearer bench' };
    const uploaded = await http(`${service.url}/_matrix/media/v3/upload`, { method: 'POST', headers: { ...auth, 'content-type': 'application/octet-stream' }, file, size: SIZE });
    if (uploaded.status !== 200) throw new Error(`upload: ${uploaded.status} ${uploaded.body}`);
    const mxc = (JSON.parse(uploaded.body) as { content_uri: string }).content_uri;
    const offloaded = `${nginx.url}/_matrix/client/v1/media/download/${mxc.slice('mxc://'.length)}`;
    const reference = `http://127.0.0.1:${directPort}/direct/${sha256.slice(0, 2)}/${sha256.slice(2, 4)}/${sha256}`;
    const ours: number[] = [];
    const theirs: number[] = [];
    // Alternating, after one warm-up of each, so both see the same page cache and the same load.
    await curlSpeed(offloaded, ['Authorization: Bearer bench']);
    await curlSpeed(reference);
    for (let round = 0; round < ROUNDS; round++) {
      ours.push(await curlSpeed(offloaded, ['Authorization: Bearer bench']));
      theirs.push(await curlSpeed(reference));
    }
    return throughputRow(NAME, 'MiB/s', median(ours), 'nginx sendfile', median(theirs), TARGET, `curl, median of ${ROUNDS} (ours ${ours.map(Math.round).join(', ')}; nginx ${theirs.map(Math.round).join(', ')} MiB/s); ${env.databaseUrl ? 'PostgreSQL' : 'PGlite'}`);
  } finally {
    await nginx.stop();
    await service.stop();
    whoami.server.close();
    await database?.drop();
  }
}

const proxyOffloadCase: BenchCase = {
  title: 'proxy offload (nginx X-Accel-Redirect)',
  async run(env) {
    if (env.nginx === undefined) {
      return [{ case: NAME, ours: '', reference: '', ratio: '', target: `≥ ${TARGET}×`, met: false, note: 'nginx not installed (apt-get install nginx-light)' }];
    }
    return [await measure(env)];
  },
};

export default proxyOffloadCase;
