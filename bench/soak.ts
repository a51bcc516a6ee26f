// Soak: 200 clients (wrk processes, see soak-load.ts) upload, download, thumbnail and download over
// federation from the service, as a child process, for a bounded time (MEDIA_REPO_SOAK_SECONDS or the first
// argument, default 600). Every 10 s it prints the service's RSS and open file descriptors; at the end the
// least-squares slope of both over the second half, and whether they plateaued: RSS grows by less than
// 1 MiB/min and descriptors by less than 1 per minute. Exit code 1 when they did not.
// On a scratch database of MEDIA_REPO_BENCH_DATABASE_URL's PostgreSQL, else on the embedded PGlite.
// Run: npm run build && npm run bench:soak [seconds]
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import sharp from 'sharp';
import { peerOverrideConfig, startFederationPeer } from './federation-peer.js';
import { createScratchDatabase, memoryOf, openFilesOf, startServiceProcess, startWhoamiStandIn, uploadToService } from './media-processes.js';
import { curlDownload } from './native-clients.js';
import { SOAK_KINDS, startLoad, type SoakKind, type SoakPools } from './soak-load.js';

const SECONDS = Number(process.env.MEDIA_REPO_SOAK_SECONDS ?? process.argv[2] ?? 600);
// 200 clients, most of them reading: every kind stays busy without thumbnail renders starving the rest.
const CLIENTS: Record<SoakKind, number> = { download: 80, federation: 60, upload: 40, thumbnail: 20 };
const TOTAL_CLIENTS = Object.values(CLIENTS).reduce((sum, n) => sum + n, 0);
const SAMPLE_SECONDS = 10;
const POOL = 20;
const MAX_RSS_SLOPE_MIB_PER_MIN = 1;
const MAX_FD_SLOPE_PER_MIN = 1;
const MiB = 1024 * 1024;

interface Sample {
  seconds: number;
  rssMiB: number;
  fds: number;
}

/** Least-squares slope of y over x. */
function slope(points: [number, number][]): number {
  const n = points.length;
  const meanX = points.reduce((s, [x]) => s + x, 0) / n;
  const meanY = points.reduce((s, [, y]) => s + y, 0) / n;
  const covariance = points.reduce((s, [x, y]) => s + (x - meanX) * (y - meanY), 0);
  const variance = points.reduce((s, [x]) => s + (x - meanX) ** 2, 0);
  return variance === 0 ? 0 : covariance / variance;
}

/** A 320×240 PNG of a smooth pattern, different for each `seed`: compressible like a photo, cheap to make. */
function patternPng(seed: number): Promise<Buffer> {
  const pixels = Buffer.alloc(320 * 240 * 3);
  for (let y = 0; y < 240; y++) {
    for (let x = 0; x < 320; x++) pixels.set([(x + seed * 13) & 255, (y * 2 + seed * 7) & 255, ((x ^ y) + seed) & 255], (y * 320 + x) * 3);
  }
  return sharp(pixels, { raw: { width: 320, height: 240, channels: 3 } }).png().toBuffer();
}

/** One request of each kind with curl before the load: a soak of error answers would measure nothing. */
async function checkEachKind(url: string, pools: SoakPools): Promise<void> {
  const auth = { authorization: `Bearer ${pools.token}` };
  const checks: [string, Record<string, string>][] = [
    [`${url}/_matrix/client/v1/media/download/${pools.tenant}/${pools.files[0]}`, auth],
    [`${url}/_matrix/client/v1/media/thumbnail/${pools.tenant}/${pools.images[0]}?width=100&height=77&method=scale`, auth],
    [`${url}/_matrix/federation/v1/media/download/${pools.files[0]}`, { authorization: pools.federationAuth(pools.files[0]!) }],
  ];
  for (const [checked, headers] of checks) {
    const result = await curlDownload(checked, headers);
    if (result.status !== 200) throw new Error(`${checked}: HTTP ${result.status}`);
  }
}

async function main(work: string): Promise<boolean> {
  if (!Number.isFinite(SECONDS) || SECONDS < 6 * SAMPLE_SECONDS) throw new Error(`the soak needs at least ${6 * SAMPLE_SECONDS} s, not ${SECONDS}`);
  const serverUrl = process.env.MEDIA_REPO_BENCH_DATABASE_URL || undefined;
  const database = serverUrl ? await createScratchDatabase(serverUrl) : undefined;
  console.log(`soak: ${TOTAL_CLIENTS} clients (${SOAK_KINDS.map((k) => `${CLIENTS[k]} ${k}`).join(', ')}) for ${SECONDS} s; database: ${database ? 'PostgreSQL (MEDIA_REPO_BENCH_DATABASE_URL)' : 'embedded PGlite (its WASM heap counts in the RSS)'}; `
    + `${cpus().length} CPUs, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  const whoami = await startWhoamiStandIn();
  const peer = await startFederationPeer();
  const logFile = join(work, 'service.log');
  const service = await startServiceProcess(join(work, 'service'), whoami.url, database?.url, false, [peerOverrideConfig(peer)], {
    logFile, media: { thumbnails: { dynamicSizing: true, maxSizesPerMedia: 1_000_000 } },
  });
  const load = { stop: () => undefined } as { stop(): void };
  try {
    const files = join(work, 'files');
    mkdirSync(files);
    const pools: SoakPools = { tenant: 'bench.example', token: 'bench-token', files: [] as string[], images: [] as string[], federationAuth: (id: string) => peer.authorization(`/_matrix/federation/v1/media/download/${id}`, 'bench.example') };
    for (let i = 0; i < POOL; i++) {
      const size = Math.round(1024 * 1024 ** (i / (POOL - 1))); // 1 KiB to 1 MiB
      writeFileSync(join(files, `${i}.bin`), randomBytes(size));
      pools.files.push(await uploadToService(service, join(files, `${i}.bin`), size));
      const png = await patternPng(i);
      writeFileSync(join(files, `${i}.png`), png);
      pools.images.push(await uploadToService(service, join(files, `${i}.png`), png.length, 'image/png'));
    }
    await checkEachKind(service.url, pools);
    const pid = service.child.pid!;
    const samples: Sample[] = [];
    const started = performance.now();
    const sample = () => {
      const entry = { seconds: (performance.now() - started) / 1000, rssMiB: memoryOf(pid, 'VmRSS') / MiB, fds: openFilesOf(pid) };
      samples.push(entry);
      console.log(`t=${entry.seconds.toFixed(0).padStart(4)} s  RSS ${entry.rssMiB.toFixed(1).padStart(6)} MiB  fds ${String(entry.fds).padStart(5)}`);
    };
    sample();
    const running = startLoad(service.url, pools, work, CLIENTS, SECONDS);
    load.stop = running.stop;
    while ((performance.now() - started) / 1000 < SECONDS) {
      await sleep(SAMPLE_SECONDS * 1000);
      sample();
    }
    const results = await running.finished();
    await sleep(1000);
    sample(); // after the last client closed: what is left behind

    console.log('');
    for (const kind of SOAK_KINDS) {
      const r = results[kind];
      console.log(`${kind.padEnd(10)} ${String(r.requests).padStart(8)} requests  ${r.requestsPerSecond.toFixed(1).padStart(8)}/s  ${r.failures} failed`);
    }
    const errors = readFileSync(logFile, 'utf8').split('\n').filter((line) => line.includes('"level":50')).length;
    console.log(`service log: ${errors} error lines`);
    const secondHalf = samples.filter((s) => s.seconds >= SECONDS / 2 && s.seconds <= SECONDS + 1);
    const rssSlope = slope(secondHalf.map((s) => [s.seconds / 60, s.rssMiB]));
    const fdSlope = slope(secondHalf.map((s) => [s.seconds / 60, s.fds]));
    if (secondHalf.length < 3) throw new Error(`${secondHalf.length} samples in the second half: too short to tell a slope`);
    const plateaued = rssSlope < MAX_RSS_SLOPE_MIB_PER_MIN && fdSlope < MAX_FD_SLOPE_PER_MIN;
    console.log(`second half (${secondHalf.length} samples): RSS ${rssSlope.toFixed(2)} MiB/min, fds ${fdSlope.toFixed(2)} per min; `
      + `RSS ${Math.min(...secondHalf.map((s) => s.rssMiB)).toFixed(0)}–${Math.max(...secondHalf.map((s) => s.rssMiB)).toFixed(0)} MiB`);
    console.log(`${plateaued ? 'plateaued' : 'NOT plateaued'} (criterion: RSS slope < ${MAX_RSS_SLOPE_MIB_PER_MIN} MiB/min and fd slope < ${MAX_FD_SLOPE_PER_MIN}/min over the second half)`);
    return plateaued;
  } finally {
    load.stop();
    await service.stop();
    await database?.drop();
    peer.close();
    whoami.server.close();
  }
}

const work = mkdtempSync(join(tmpdir(), 'bench-soak-'));
try {
  process.exitCode = (await main(work)) ? 0 : 1;
} finally {
  rmSync(work, { recursive: true, force: true });
}
