// Downloads through the whole service against the plainest node:http server streaming the same file, same
// run: 10 KiB federation (X-Matrix verified) and client (cached token) downloads with wrk (medians of 5
// interleaved rounds), 100 MiB ones with curl (medians of 7), and the service's peak RSS while 20 curl
// clients download 1 GiB.
// The service and the reference each run in their own process; the clients are wrk and curl processes.
import { mkdirSync, truncateSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { HUGE_CLIENTS, peakDuringHugeDownloads } from '../huge-downloads.js';
import { throughputRow, type BenchCase, type BenchEnvironment, type BenchRow } from '../bench-row.js';
import { startBareFileServer } from '../bare-file-server.js';
import { peerOverrideConfig, startFederationPeer } from '../federation-peer.js';
import {
  createScratchDatabase, OBSERVE, startServiceProcess, startWhoamiStandIn, uploadToService, writeRandomFile,
} from '../media-processes.js';
import { curlDownload, curlMiBps, median, wrk } from '../native-clients.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const TENANT = 'bench.example';
const CLIENT_AUTH = { authorization: 'Bearer bench-token' };
const WRK_SECONDS = 5;
const WRK_CONNECTIONS = 16;
/** Rounds of 10 KiB downloads: one 5 s wrk run here swings by up to 40% from the next, for the reference too. */
const ROUNDS = 5;
/** A 100 MiB download lasts a tenth of a second here, and single rounds swing by 2× either way: more of them. */
const LARGE_ROUNDS = 7;

interface Urls {
  federation(mediaId: string): string;
  client(mediaId: string): string;
  federationAuth(mediaId: string): Record<string, string>;
}

async function run(env: BenchEnvironment): Promise<BenchRow[]> {
  const files = join(env.workDir, 'files');
  mkdirSync(files, { recursive: true });
  writeFileSync(join(files, 'small.bin'), randomBytes(10 * KiB));
  await writeRandomFile(join(files, 'large.bin'), 100 * MiB);
  writeFileSync(join(files, 'huge.bin'), '');
  truncateSync(join(files, 'huge.bin'), GiB); // sparse: 1 GiB that costs no disk to make

  const database = env.databaseUrl ? await createScratchDatabase(env.databaseUrl) : undefined;
  const whoami = await startWhoamiStandIn();
  const peer = await startFederationPeer();
  // The service's log goes to a file: the table stays readable whatever the service logs under load.
  const logFile = join(env.workDir, 'service.log');
  const startService = () => startServiceProcess(join(env.workDir, 'service'), whoami.url, database?.url, OBSERVE, [peerOverrideConfig(peer)], { logFile });
  let service = await startService();
  const bare = await startBareFileServer(files);
  try {
    progress('uploading 10 KiB, 100 MiB and 1 GiB media');
    const ids = {
      small: await uploadToService(service, join(files, 'small.bin'), 10 * KiB),
      large: await uploadToService(service, join(files, 'large.bin'), 100 * MiB),
      huge: await uploadToService(service, join(files, 'huge.bin'), GiB),
    };
    const urls: Urls = {
      federation: (id) => `${service.url}/_matrix/federation/v1/media/download/${id}`,
      client: (id) => `${service.url}/_matrix/client/v1/media/download/${TENANT}/${id}`,
      federationAuth: (id) => ({ authorization: peer.authorization(`/_matrix/federation/v1/media/download/${id}`, TENANT) }),
    };
    progress('10 KiB downloads with wrk');
    const rows = await smallDownloads(urls, ids.small, bare.url);
    progress('100 MiB downloads with curl');
    rows.push(...(await largeDownloads(urls, ids.large, bare.url)));
    progress(`${HUGE_CLIENTS} × 1 GiB downloads with curl`);
    // A fresh process, so that the peak belongs to the downloads and not to what ran before.
    await service.stop();
    service = await startService();
    rows.push(await peakDuringHugeDownloads(service, urls.client(ids.huge), CLIENT_AUTH, env.databaseUrl !== undefined, `peak RSS, ${HUGE_CLIENTS} × 1 GiB concurrent downloads (curl)`, 600));
    return rows;
  } finally {
    await bare.stop();
    await service.stop();
    await database?.drop();
    peer.close();
    whoami.server.close();
  }
}

const progress = (what: string) => console.error(`downloads: ${what}`);

/** wrk's requests per second; a run with failed requests is no measurement. */
async function requestsPerSecond(url: string, headers: Record<string, string>, seconds = WRK_SECONDS): Promise<number> {
  const result = await wrk(url, { seconds, connections: WRK_CONNECTIONS, headers });
  if (result.failures > 0) throw new Error(`${url}: ${result.failures} of ${result.requests} requests failed\n${result.output}`);
  return result.requestsPerSecond;
}

/** 10 KiB downloads: rounds of reference, federation and client interleaved, so all see the same load; medians. */
async function smallDownloads(urls: Urls, mediaId: string, bareUrl: string): Promise<BenchRow[]> {
  const targets: [string, Record<string, string>][] = [
    [`${bareUrl}/small.bin`, {}],
    [urls.federation(mediaId), urls.federationAuth(mediaId)],
    [urls.client(mediaId), CLIENT_AUTH],
  ];
  for (const [url, headers] of targets) {
    const check = await curlDownload(url, headers);
    if (check.status !== 200) throw new Error(`${url}: HTTP ${check.status}`);
    await requestsPerSecond(url, headers, 1); // warm-up: connections, JIT, caches
  }
  const rates: number[][] = [[], [], []];
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, [url, headers]] of targets.entries()) rates[i]!.push(await requestsPerSecond(url, headers));
  }
  const [bare, federation, client] = rates.map(median) as [number, number, number];
  const how = (ours: number[]) => `wrk -t1 -c${WRK_CONNECTIONS} -d${WRK_SECONDS}s, median of ${ROUNDS} (ours ${ours.map(Math.round).join(', ')}; bare ${rates[0]!.map(Math.round).join(', ')})`;
  return [
    throughputRow('10 KiB federation download, X-Matrix verified', 'req/s', federation, 'bare node:http', bare, 0.6, `${how(rates[1]!)}; one pre-signed header replayed`),
    throughputRow('10 KiB client download, cached token', 'req/s', client, 'bare node:http', bare, 0.7, how(rates[2]!)),
  ];
}

/** 100 MiB downloads, one curl client, rounds interleaved; medians. */
async function largeDownloads(urls: Urls, mediaId: string, bareUrl: string): Promise<BenchRow[]> {
  const speeds = { federation: [] as number[], client: [] as number[], bare: [] as number[] };
  for (let round = 0; round < LARGE_ROUNDS; round++) {
    speeds.federation.push(await curlMiBps(urls.federation(mediaId), 100 * MiB, urls.federationAuth(mediaId)));
    speeds.client.push(await curlMiBps(urls.client(mediaId), 100 * MiB, CLIENT_AUTH));
    speeds.bare.push(await curlMiBps(`${bareUrl}/1m/large.bin`, 100 * MiB));
  }
  const bare = median(speeds.bare);
  const how = (ours: number[]) => `curl, median of ${LARGE_ROUNDS} (ours ${ours.map(Math.round).join(', ')}; bare ${speeds.bare.map(Math.round).join(', ')} MiB/s)`;
  return [
    throughputRow('100 MiB federation download (multipart)', 'MiB/s', median(speeds.federation), 'bare node:http, 1 MiB reads', bare, 0.9, how(speeds.federation)),
    throughputRow('100 MiB client download', 'MiB/s', median(speeds.client), 'bare node:http, 1 MiB reads', bare, 0.9, how(speeds.client)),
  ];
}

const downloads: BenchCase = { title: 'downloads', run };
export default downloads;
