// Upload and download throughput of the media repository against nginx handling the same files in the same
// run (static GET with sendfile; WebDAV PUT to a temp file and rename), and the service's peak RSS while 20
// clients download one 1 GiB file at once. The service runs as a child process, on a scratch database of
// the PostgreSQL named by MEDIA_REPO_BENCH_DATABASE_URL (as in production), else on the embedded PGlite,
// whose WebAssembly heap alone is several hundred MiB of RSS.
// Run: npx tsc -p tsconfig.json && MEDIA_REPO_BENCH_DATABASE_URL=postgres://... node dist/bench/upload-download.js
// MEDIA_REPO_BENCH_OBSERVE=1 turns metrics and the access log on; compare with a run without it.
// MEDIA_REPO_BENCH_SMALL_ONLY=1 runs only the 10 KiB rows (the throughput that observing costs most).
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { agent, createScratchDatabase, http, memoryOf, OBSERVE, resetPeakMemory, startNginx, startServiceProcess, startWhoamiStandIn, type HttpResult } from './media-processes.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const SMALL = 10 * KiB;
const LARGE = 100 * MiB;
const HUGE = GiB;
const SMALL_REQUESTS = 2000;
const SMALL_CONCURRENCY = 16;
const LARGE_REPEATS = 3;
const HUGE_CLIENTS = 20;
const AUTH = { authorization: 'Bearer bench-token' };
const SMALL_ONLY = process.env.MEDIA_REPO_BENCH_SMALL_ONLY === '1';

interface Row {
  label: string;
  unit: 'req/s' | 'MiB/s';
  ours: number;
  nginx: number;
}

const work = mkdtempSync(join(tmpdir(), 'bench-media-'));
const files = join(work, 'files');
mkdirSync(files);
const small = join(files, 'small.bin');
const large = join(files, 'large.bin');
const huge = join(files, 'huge.bin');

async function main(): Promise<void> {
  writeFileSync(small, randomBytes(SMALL));
  if (!SMALL_ONLY) await writeRandomFile(large, LARGE);
  writeFileSync(huge, '');
  truncateSync(huge, HUGE); // sparse: a 1 GiB file that costs no disk and no memory to make

  const serverUrl = process.env.MEDIA_REPO_BENCH_DATABASE_URL;
  const database = serverUrl ? await createScratchDatabase(serverUrl) : undefined;
  console.log(`database: ${database ? 'PostgreSQL (MEDIA_REPO_BENCH_DATABASE_URL)' : 'embedded PGlite'}; metrics and access log ${OBSERVE ? 'on' : 'off'}; ${cpus().length} CPUs, load average ${loadavg()[0]!.toFixed(1)}; service, nginx and clients share them`);
  const whoami = await startWhoamiStandIn();
  let service = await startServiceProcess(join(work, 'service'), whoami.url, database?.url);
  const nginx = await startNginx(join(work, 'nginx'), files);
  const rows: Row[] = [];
  try {
    const uploadOurs = (file: string, size: number) => expectOk(http(`${service.url}/_matrix/media/v3/upload`, {
      method: 'POST', headers: { ...AUTH, 'content-type': 'application/octet-stream' }, file, size,
    }));
    let putCount = 0;
    const uploadNginx = (file: string, size: number) => expectOk(http(`${nginx.url}/upload/${putCount++}.bin`, { method: 'PUT', file, size }));
    const downloadUrl = async (file: string, size: number) => {
      const { body } = await uploadOurs(file, size);
      const mediaId = String(JSON.parse(body).content_uri).split('/').pop();
      return `${service.url}/_matrix/client/v1/media/download/bench.example/${mediaId}`;
    };
    const smallUrl = await downloadUrl(small, SMALL);
    const largeUrl = SMALL_ONLY ? '' : await downloadUrl(large, LARGE);
    const download = (url: string, size: number, headers: Record<string, string> = {}) => async () => {
      const result = await expectOk(http(url, { headers }));
      if (result.bytes !== size) throw new Error(`${url}: ${result.bytes} bytes, expected ${size}`);
    };

    rows.push({
      label: `10 KiB download (${SMALL_CONCURRENCY} clients)`, unit: 'req/s',
      ours: await perSecond(SMALL_REQUESTS, SMALL_CONCURRENCY, download(smallUrl, SMALL, AUTH)),
      nginx: await perSecond(SMALL_REQUESTS, SMALL_CONCURRENCY, download(`${nginx.url}/small.bin`, SMALL)),
    });
    rows.push({
      label: `10 KiB upload (${SMALL_CONCURRENCY} clients)`, unit: 'req/s', // the same file: deduplicated by us
      ours: await perSecond(SMALL_REQUESTS / 2, SMALL_CONCURRENCY, () => uploadOurs(small, SMALL)),
      nginx: await perSecond(SMALL_REQUESTS / 2, SMALL_CONCURRENCY, () => uploadNginx(small, SMALL)),
    });
    if (SMALL_ONLY) {
      printRows(rows);
      return;
    }
    rows.push({
      label: '100 MiB download (1 client)', unit: 'MiB/s',
      ours: 100 * (await perSecond(LARGE_REPEATS, 1, download(largeUrl, LARGE, AUTH))),
      nginx: 100 * (await perSecond(LARGE_REPEATS, 1, download(`${nginx.url}/large.bin`, LARGE))),
    });
    rows.push({
      label: '100 MiB upload (1 client)', unit: 'MiB/s',
      ours: 100 * (await perSecond(LARGE_REPEATS, 1, () => uploadOurs(large, LARGE))),
      nginx: 100 * (await perSecond(LARGE_REPEATS, 1, () => uploadNginx(large, LARGE))),
    });
    printRows(rows);

    const started = Date.now();
    const hugePath = new URL(await downloadUrl(huge, HUGE)).pathname;
    console.log(`\n1 GiB upload to the service: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    // A fresh process, so that the peak belongs to the downloads and not to what ran before.
    await service.stop();
    service = await startServiceProcess(join(work, 'service'), whoami.url, database?.url);
    await peakDuringHugeDownloads(service.child.pid!, `${service.url}${hugePath}`);
  } finally {
    await nginx.stop();
    await service.stop();
    await database?.drop();
    whoami.server.close();
    agent.destroy();
  }
}

/** Operations per second of `count` runs of `operation`, `concurrency` at a time. */
async function perSecond(count: number, concurrency: number, operation: () => Promise<unknown>): Promise<number> {
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) {
      next++;
      await operation();
    }
  }));
  return count / (Number(process.hrtime.bigint() - started) / 1e9);
}

async function peakDuringHugeDownloads(pid: number, url: string): Promise<void> {
  const baseline = memoryOf(pid, 'VmRSS');
  resetPeakMemory(pid);
  let sampledMax = 0;
  const sampler = setInterval(() => { sampledMax = Math.max(sampledMax, memoryOf(pid, 'VmRSS')); }, 50);
  const started = process.hrtime.bigint();
  const results = await Promise.all(Array.from({ length: HUGE_CLIENTS }, () => expectOk(http(url, { headers: AUTH }))));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  clearInterval(sampler);
  const peak = memoryOf(pid, 'VmHWM');
  if (results.some((r) => r.bytes !== HUGE)) throw new Error('a 1 GiB download came back short');
  console.log(`${HUGE_CLIENTS} concurrent downloads of a 1 GiB file: ${(HUGE_CLIENTS * HUGE / GiB).toFixed(0)} GiB in ${seconds.toFixed(1)} s (${(HUGE_CLIENTS * HUGE / MiB / seconds).toFixed(0)} MiB/s in total)`);
  console.log(`service RSS: ${mib(baseline)} after a restart; peak (VmHWM) during the downloads ${mib(peak)}, highest sample ${mib(sampledMax)} (goal < 200 MiB)`);
}

async function expectOk(pending: Promise<HttpResult>): Promise<HttpResult> {
  const result = await pending;
  if (result.status < 200 || result.status > 299) throw new Error(`HTTP ${result.status}: ${result.body.slice(0, 200)}`);
  return result;
}

async function writeRandomFile(path: string, size: number): Promise<void> {
  const out = createWriteStream(path);
  for (let written = 0; written < size; written += MiB) {
    if (!out.write(randomBytes(Math.min(MiB, size - written)))) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

function printRows(rows: Row[]): void {
  console.log('media-repo vs nginx, same files, same run, loopback (nginx: 1 worker, sendfile; uploads: WebDAV PUT)');
  console.log(`${'case'.padEnd(32)}${'media-repo'.padStart(14)}${'nginx'.padStart(14)}${'ratio'.padStart(8)}`);
  for (const row of rows) {
    const format = (value: number) => `${value.toFixed(0)} ${row.unit}`;
    console.log(`${row.label.padEnd(32)}${format(row.ours).padStart(14)}${format(row.nginx).padStart(14)}${(row.ours / row.nginx).toFixed(2).padStart(8)}`);
  }
}

const mib = (bytes: number) => `${(bytes / MiB).toFixed(0)} MiB`;

try {
  await main();
} finally {
  rmSync(work, { recursive: true, force: true });
}
