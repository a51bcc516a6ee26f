// Soak: 200 clients (wrk processes, see soak-load.ts) upload, download, thumbnail and download over
// federation from the service, as a child process, for a bounded time (MEDIA_REPO_SOAK_SECONDS or the first
// argument, default 600). It samples the service's RSS and open file descriptors every 2 s and prints them
// every 10 s; at the end the least-squares slope of both over the second half, and whether they plateaued.
// RSS is split into V8's heap (the service's metrics) and the parts outside it that smaps tells apart
// (memory-maps.ts): PGlite's WebAssembly memory, the C heaps, compiled code.
// Plateaued: the RSS slope plus twice its standard error is under 1 MiB/min (shown flat, not merely too noisy
// to tell: a short run cannot pass), and once the clients have gone the descriptors other than sockets are
// back to their count before the load (a leaked file stays open; sockets come and go with the clients).
// Exit code 1 when not.
// On a scratch database of MEDIA_REPO_BENCH_DATABASE_URL's PostgreSQL, else on the embedded PGlite.
// Run: npm run build && npm run bench:soak [seconds]
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import sharp from 'sharp';
import { peerOverrideConfig, startFederationPeer } from './federation-peer.js';
import { createScratchDatabase, freePort, memoryOf, openFilesOf, startServiceProcess, startWhoamiStandIn, uploadToService } from './media-processes.js';
import { residentPartsOf } from './memory-maps.js';
import { curlDownload } from './native-clients.js';
import { SOAK_KINDS, startLoad, type SoakKind, type SoakPools } from './soak-load.js';

const SECONDS = Number(process.env.MEDIA_REPO_SOAK_SECONDS ?? process.argv[2] ?? 600);
// 200 clients, most of them reading: every kind stays busy without thumbnail renders starving the rest.
const CLIENTS: Record<SoakKind, number> = { download: 80, federation: 60, upload: 40, thumbnail: 20 };
const TOTAL_CLIENTS = Object.values(CLIENTS).reduce((sum, n) => sum + n, 0);
const SAMPLE_SECONDS = 2;
const PRINT_EVERY = 5; // samples: a line every 10 s
const POOL = 20;
const MAX_RSS_SLOPE_MIB_PER_MIN = 1;
const MAX_FDS_LEFT = 2; // descriptors other than sockets the load may leave open: a log file, a pipe
const MiB = 1024 * 1024;

interface Sample {
  seconds: number;
  rssMiB: number;
  /** V8's heap in use and committed, and memory outside it (Buffers), from the service's own metrics: where RSS grows. */
  heapMiB: number;
  heapTotalMiB: number;
  externalMiB: number;
  /** Resident parts outside V8's heap (memory-maps.ts): PGlite's WebAssembly memory, the C heaps, compiled code. */
  wasmMiB: number;
  mallocMiB: number;
  codeMiB: number;
  fds: number;
  fileFds: number;
}

/** Least-squares slope of y over x, and its standard error. */
function slope(all: [number, number][]): { slope: number; error: number } {
  const points = all.filter(([, y]) => Number.isFinite(y));
  const n = points.length;
  const meanX = points.reduce((s, [x]) => s + x, 0) / n;
  const meanY = points.reduce((s, [, y]) => s + y, 0) / n;
  const sxx = points.reduce((s, [x]) => s + (x - meanX) ** 2, 0);
  const fitted = points.reduce((s, [x, y]) => s + (x - meanX) * (y - meanY), 0) / sxx;
  const residuals = points.reduce((s, [x, y]) => s + (y - meanY - fitted * (x - meanX)) ** 2, 0);
  return { slope: fitted, error: Math.sqrt(residuals / (n - 2) / sxx) };
}

/** A 320×240 PNG of a smooth pattern, different for each `seed`: compressible like a photo, cheap to make. */
function patternPng(seed: number): Promise<Buffer> {
  const pixels = Buffer.alloc(320 * 240 * 3);
  for (let y = 0; y < 240; y++) {
    for (let x = 0; x < 320; x++) pixels.set([(x + seed * 13) & 255, (y * 2 + seed * 7) & 255, ((x ^ y) + seed) & 255], (y * 320 + x) * 3);
  }
  return sharp(pixels, { raw: { width: 320, height: 240, channels: 3 } }).png().toBuffer();
}

/** How many error lines the service logged, by message. */
function reportErrorLines(log: string): void {
  const counts = new Map<string, number>();
  for (const line of log.split('\n')) {
    if (!line.includes('"level":50')) continue;
    const message = /"msg":"([^"]*)"/.exec(line)?.[1] ?? line.slice(0, 80);
    counts.set(message, (counts.get(message) ?? 0) + 1);
  }
  const total = [...counts.values()].reduce((sum, n) => sum + n, 0);
  console.log(`service log: ${total} error lines${total ? `: ${[...counts].map(([m, n]) => `${n} × ${m}`).join('; ')}` : ''}`);
}

/** The service's V8 heap in use and its external memory, read from its metrics endpoint. */
async function heapOf(metricsUrl: string): Promise<{ heapMiB: number; heapTotalMiB: number; externalMiB: number }> {
  // A sample the service was too busy to answer counts as missing, not as a failed soak.
  const text = await fetch(metricsUrl, { signal: AbortSignal.timeout(5000) }).then((r) => r.text(), () => '');
  const value = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN) / MiB;
  return { heapMiB: value('media_repo_nodejs_heap_size_used_bytes'), heapTotalMiB: value('media_repo_nodejs_heap_size_total_bytes'), externalMiB: value('media_repo_nodejs_external_memory_bytes') };
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
  if (!Number.isFinite(SECONDS) || SECONDS < 30 * SAMPLE_SECONDS) throw new Error(`the soak needs at least ${30 * SAMPLE_SECONDS} s, not ${SECONDS}`);
  const serverUrl = process.env.MEDIA_REPO_BENCH_DATABASE_URL || undefined;
  const database = serverUrl ? await createScratchDatabase(serverUrl) : undefined;
  console.log(`soak: ${TOTAL_CLIENTS} clients (${SOAK_KINDS.map((k) => `${CLIENTS[k]} ${k}`).join(', ')}) for ${SECONDS} s; database: ${database ? 'PostgreSQL (MEDIA_REPO_BENCH_DATABASE_URL)' : 'embedded PGlite (its WASM heap counts in the RSS)'}; `
    + `${cpus().length} CPUs, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  const whoami = await startWhoamiStandIn();
  const peer = await startFederationPeer();
  const logFile = join(work, 'service.log');
  const metricsPort = await freePort();
  const metricsConfig = `metrics: {enabled: true, host: 127.0.0.1, port: ${metricsPort}}`;
  const service = await startServiceProcess(join(work, 'service'), whoami.url, database?.url, false, [peerOverrideConfig(peer), metricsConfig], {
    // The small-blob cache is set small enough to be full within the first half: this looks for leaks, and
    // at the default 64 MiB a cache filling with ever new thumbnails would read as growth for half an hour.
    logFile, media: { thumbnails: { dynamicSizing: true, maxSizesPerMedia: 1_000_000 }, smallBlobs: { cacheBytes: 8 * MiB } },
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
    const sample = async (print: boolean) => {
      const fds = openFilesOf(pid);
      const seconds = (performance.now() - started) / 1000;
      const parts = residentPartsOf(pid);
      const entry = { seconds, rssMiB: memoryOf(pid, 'VmRSS') / MiB, ...(await heapOf(`http://127.0.0.1:${metricsPort}/metrics`)),
        wasmMiB: parts.wasm / MiB, mallocMiB: parts.malloc / MiB, codeMiB: parts.code / MiB, fds: fds.all, fileFds: fds.notSockets };
      samples.push(entry);
      if (print) {
        console.log(`t=${entry.seconds.toFixed(0).padStart(4)} s  RSS ${entry.rssMiB.toFixed(1).padStart(6)} MiB (V8 heap ${entry.heapMiB.toFixed(1)} of ${entry.heapTotalMiB.toFixed(1)}, external ${entry.externalMiB.toFixed(1)}; WASM ${entry.wasmMiB.toFixed(1)}, C heaps ${entry.mallocMiB.toFixed(1)}, code ${entry.codeMiB.toFixed(1)})  `
          + `fds ${String(entry.fds).padStart(5)} (${entry.fileFds} not sockets)`);
      }
    };
    await sample(true);
    const running = startLoad(service.url, pools, work, CLIENTS, SECONDS);
    load.stop = running.stop;
    while ((performance.now() - started) / 1000 < SECONDS) {
      await sleep(SAMPLE_SECONDS * 1000);
      await sample(samples.length % PRINT_EVERY === 0);
    }
    const results = await running.finished();
    // Work whose client has gone (a render after a timeout) may still hold files: give it up to 30 s.
    const loaded = samples.length;
    do {
      await sleep(SAMPLE_SECONDS * 1000);
      await sample(false);
    } while (samples.at(-1)!.fileFds > samples[0]!.fileFds + MAX_FDS_LEFT && samples.length - loaded < 15);
    console.log('after the last client closed and the service went quiet (or 30 s):');
    await sample(true);

    console.log('');
    for (const kind of SOAK_KINDS) {
      const r = results[kind];
      console.log(`${kind.padEnd(10)} ${String(r.requests).padStart(8)} requests  ${r.requestsPerSecond.toFixed(1).padStart(8)}/s  `
        + `${r.non2xx} not 2xx, ${r.timeouts} timed out (30 s), ${r.failures - r.non2xx - r.timeouts} other socket errors`);
    }
    reportErrorLines(readFileSync(logFile, 'utf8'));
    const secondHalf = samples.filter((s) => s.seconds >= SECONDS / 2 && s.seconds <= SECONDS + 1);
    const rss = slope(secondHalf.map((s) => [s.seconds / 60, s.rssMiB]));
    const heap = slope(secondHalf.map((s) => [s.seconds / 60, s.heapMiB]));
    const heapTotal = slope(secondHalf.map((s) => [s.seconds / 60, s.heapTotalMiB]));
    const external = slope(secondHalf.map((s) => [s.seconds / 60, s.externalMiB]));
    const outside = slope(secondHalf.map((s) => [s.seconds / 60, s.rssMiB - s.heapTotalMiB]));
    const parts = (['wasmMiB', 'mallocMiB', 'codeMiB'] as const).map((part) => slope(secondHalf.map((s) => [s.seconds / 60, s[part]])));
    const fds = slope(secondHalf.map((s) => [s.seconds / 60, s.fds]));
    const fileFds = slope(secondHalf.map((s) => [s.seconds / 60, s.fileFds]));
    const leftOpen = samples.at(-1)!.fileFds - samples[0]!.fileFds;
    const rssFlat = rss.slope + 2 * rss.error < MAX_RSS_SLOPE_MIB_PER_MIN;
    const range = (all: number[]) => { const values = all.filter(Number.isFinite); return `${Math.min(...values).toFixed(0)}–${Math.max(...values).toFixed(0)}`; };
    console.log(`second half (${secondHalf.length} samples): RSS ${rss.slope.toFixed(2)} ± ${rss.error.toFixed(2)} MiB/min (${range(secondHalf.map((s) => s.rssMiB))} MiB); `
      + `fds ${fds.slope.toFixed(2)} ± ${fds.error.toFixed(2)} per min (${range(secondHalf.map((s) => s.fds))}), not sockets ${fileFds.slope.toFixed(2)} ± ${fileFds.error.toFixed(2)} per min (${range(secondHalf.map((s) => s.fileFds))})`);
    console.log(`  of which V8 heap in use ${heap.slope.toFixed(2)} ± ${heap.error.toFixed(2)} MiB/min (${range(secondHalf.map((s) => s.heapMiB))} MiB), `
      + `committed ${heapTotal.slope.toFixed(2)} ± ${heapTotal.error.toFixed(2)} MiB/min (${range(secondHalf.map((s) => s.heapTotalMiB))} MiB), `
      + `external ${external.slope.toFixed(2)} ± ${external.error.toFixed(2)} MiB/min (${range(secondHalf.map((s) => s.externalMiB))} MiB); `
      + `RSS outside V8's heap ${outside.slope.toFixed(2)} ± ${outside.error.toFixed(2)} MiB/min (${range(secondHalf.map((s) => s.rssMiB - s.heapTotalMiB))} MiB)`);
    const [wasm, malloc, code] = parts.map((p) => `${p!.slope.toFixed(2)} ± ${p!.error.toFixed(2)} MiB/min`);
    console.log(`  resident WASM memory ${wasm} (${range(secondHalf.map((s) => s.wasmMiB))} MiB), C heaps ${malloc} (${range(secondHalf.map((s) => s.mallocMiB))} MiB), `
      + `compiled code ${code} (${range(secondHalf.map((s) => s.codeMiB))} MiB)`);
    console.log(`RSS ${rssFlat ? 'flat' : 'NOT shown flat'}: slope + 2 SE = ${(rss.slope + 2 * rss.error).toFixed(2)} MiB/min (must be < ${MAX_RSS_SLOPE_MIB_PER_MIN}); `
      + `descriptors other than sockets ${leftOpen <= MAX_FDS_LEFT ? 'back' : 'NOT back'} to the count before the load (${samples[0]!.fileFds} before, ${samples.at(-1)!.fileFds} after, at most ${MAX_FDS_LEFT} more allowed)`);
    const plateaued = rssFlat && leftOpen <= MAX_FDS_LEFT;
    console.log(plateaued ? 'plateaued' : 'NOT plateaued');
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
