// The service on an S3 datastore against the bare S3 client (@aws-sdk) moving the same bytes to and from the
// same s3rver in the same run: 100 MiB both ways (curl to the service, lib-storage Upload and GetObject for
// the reference, medians of 3 interleaved rounds), 10 KiB both ways (wrk to the service, 16 concurrent
// PutObject/GetObject for the reference), and the service's peak RSS while 20 curl clients stream a 1 GiB
// S3 object. s3rver runs in a process of its own, so its CPU and memory are nobody's client.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, mkdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { HUGE_CLIENTS, peakDuringHugeDownloads } from '../huge-downloads.js';
import { throughputRow, type BenchCase, type BenchEnvironment, type BenchRow } from '../bench-row.js';
import { curlOk, median } from '../curl.js';
import {
  createScratchDatabase, freePort, startServiceProcess, startWhoamiStandIn, uploadToService, writeRandomFile,
  type ChildService,
} from '../media-processes.js';
import { curlMiBps, wrk } from '../native-clients.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const ROUNDS = 3;
const SMALL_SECONDS = 5;
const SMALL_CONNECTIONS = 16;
const BUCKET = 'media';
const TOKEN = 'Bearer bench-token';
const CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

async function run(env: BenchEnvironment): Promise<BenchRow[]> {
  const files = join(env.workDir, 'files');
  mkdirSync(files, { recursive: true });
  // A different 100 MiB body each round, so that no round of either side writes over bytes already stored.
  const large = Array.from({ length: ROUNDS }, (_, i) => join(files, `large-${i}.bin`));
  for (const file of large) await writeRandomFile(file, 100 * MiB);
  const small = join(files, 'small.bin');
  writeFileSync(small, randomBytes(10 * KiB));
  const huge = join(files, 'huge.bin');
  writeFileSync(huge, '');
  truncateSync(huge, GiB); // sparse: costs no disk here (s3rver keeps its own copy)

  const s3 = await startS3rver(join(env.workDir, 's3rver'));
  const database = env.databaseUrl ? await createScratchDatabase(env.databaseUrl) : undefined;
  const whoami = await startWhoamiStandIn();
  const datastores = [`datastores: [${JSON.stringify({
    id: 's3', type: 's3', forKinds: ['all'],
    opts: { endpoint: s3.endpoint, bucketName: BUCKET, forcePathStyle: true, prefix: 'service/', accessKeyId: CREDENTIALS.accessKeyId, accessSecret: CREDENTIALS.secretAccessKey },
  })}]`];
  const startService = () => startServiceProcess(join(env.workDir, 'service'), whoami.url, database?.url, false, datastores, { logFile: join(env.workDir, 'service.log') });
  let service = await startService();
  // The service's own client settings (src/storage/s3-client.ts), so that the two sides differ only by the service.
  const client = new S3Client({
    endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: CREDENTIALS,
    requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
  });
  try {
    const rows: BenchRow[] = [];
    // Each row is printed as it is measured: the 1 GiB part is long on a loaded machine.
    const measured = (...more: BenchRow[]) => {
      for (const row of more) progress(`${row.case}: ${row.ours} against ${row.reference || row.target} (${row.ratio || (row.met ? 'met' : 'not met')})`);
      rows.push(...more);
    };
    progress('100 MiB uploads and downloads');
    measured(...(await largeTransfers(service, client, large)));
    progress('10 KiB uploads and downloads');
    measured(...(await smallTransfers(service, client, small)));
    progress(`${HUGE_CLIENTS} × 1 GiB downloads with curl`);
    const hugeId = await uploadToService(service, huge, GiB);
    // A fresh process, so that the peak belongs to the downloads and not to what ran before.
    await service.stop();
    service = await startService();
    measured(await peakDuringHugeDownloads(service, clientUrl(service, hugeId), { authorization: TOKEN }, env.databaseUrl !== undefined, `S3: peak RSS, ${HUGE_CLIENTS} × 1 GiB S3 object streamed at once (curl)`, 3600));
    return rows;
  } finally {
    client.destroy();
    await service.stop();
    await database?.drop();
    whoami.server.close();
    s3.process.kill('SIGTERM');
    await once(s3.process, 'exit');
  }
}

const progress = (what: string) => console.error(`s3: ${what}`);
const clientUrl = (service: ChildService, mediaId: string) => `${service.url}/_matrix/client/v1/media/download/bench.example/${mediaId}`;

/** 100 MiB each way, one client, rounds of ours and the reference interleaved; medians in MiB/s. */
async function largeTransfers(service: ChildService, client: S3Client, large: string[]): Promise<BenchRow[]> {
  const up = { ours: [] as number[], bare: [] as number[] };
  const down = { ours: [] as number[], bare: [] as number[] };
  const mediaIds: string[] = [];
  for (const [round, file] of large.entries()) {
    const ours = await curlOk(['-X', 'POST', '-H', `Authorization: ${TOKEN}`, '-H', 'Content-Type: application/octet-stream', '--data-binary', `@${file}`,
      `${service.url}/_matrix/media/v3/upload`], null);
    up.ours.push(100 / ours.seconds);
    mediaIds.push(String(JSON.parse(ours.body).content_uri).split('/').pop()!);
    up.bare.push(100 / (await timed(() => new Upload({ client, params: { Bucket: BUCKET, Key: `bare/large-${round}`, Body: createReadStream(file) } }).done())));
  }
  for (let round = 0; round < ROUNDS; round++) {
    down.ours.push(await curlMiBps(clientUrl(service, mediaIds[round]!), 100 * MiB, { authorization: TOKEN }));
    down.bare.push(100 / (await timed(() => bareDownload(client, `bare/large-${round}`, 100 * MiB))));
  }
  const how = (side: { ours: number[]; bare: number[] }) => `median of ${ROUNDS} (ours ${side.ours.map(Math.round).join(', ')}; bare ${side.bare.map(Math.round).join(', ')} MiB/s)`;
  return [
    throughputRow('S3: 100 MiB upload (curl to the service)', 'MiB/s', median(up.ours), 'bare S3 client, lib-storage Upload', median(up.bare), 0.8, how(up)),
    throughputRow('S3: 100 MiB client download (curl)', 'MiB/s', median(down.ours), 'bare S3 client, GetObject', median(down.bare), 0.8, how(down)),
  ];
}

/** 10 KiB each way from 16 connections: wrk against the service, 16 concurrent SDK requests as the reference. */
async function smallTransfers(service: ChildService, client: S3Client, small: string): Promise<BenchRow[]> {
  const body = readFileSync(small);
  const mediaId = await uploadToService(service, small, body.length);
  await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'bare/small', Body: body }));
  const script = join(small, '..', 'upload.lua');
  writeFileSync(script, [
    `local f = io.open(${JSON.stringify(small)}, "rb")`, 'wrk.method = "POST"', 'wrk.body = f:read("*a")', 'f:close()',
    'wrk.headers["Content-Type"] = "application/octet-stream"', '', // the token comes with wrkRate's -H
  ].join('\n'));
  let keys = 0;
  const oursUp = await wrkRate(`${service.url}/_matrix/media/v3/upload`, script);
  const bareUp = await sdkRate(() => client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `bare/small-${keys++}`, Body: body })));
  const oursDown = await wrkRate(clientUrl(service, mediaId));
  const bareDown = await sdkRate(() => bareDownload(client, 'bare/small', body.length));
  const note = `wrk -c${SMALL_CONNECTIONS} -d${SMALL_SECONDS}s against ${SMALL_CONNECTIONS} concurrent SDK requests for ${SMALL_SECONDS} s`;
  return [
    throughputRow(`S3: 10 KiB upload, ${SMALL_CONNECTIONS} connections`, 'req/s', oursUp, 'bare S3 client, PutObject', bareUp, undefined, `${note}; the same body each time: one blob, written to S3 again each time`),
    throughputRow(`S3: 10 KiB client download, ${SMALL_CONNECTIONS} connections`, 'req/s', oursDown, 'bare S3 client, GetObject', bareDown, undefined, note),
  ];
}

async function wrkRate(url: string, script?: string): Promise<number> {
  const result = await wrk(url, { seconds: SMALL_SECONDS, connections: SMALL_CONNECTIONS, headers: { authorization: TOKEN }, script, timeout: 30 });
  if (result.failures > 0) throw new Error(`${url}: ${result.failures} of ${result.requests} requests failed\n${result.output}`);
  return result.requestsPerSecond;
}

/** Requests per second of SMALL_CONNECTIONS loops of `operation` for SMALL_SECONDS. */
async function sdkRate(operation: () => Promise<unknown>): Promise<number> {
  let done = 0;
  const started = performance.now();
  const until = started + SMALL_SECONDS * 1000;
  await Promise.all(Array.from({ length: SMALL_CONNECTIONS }, async () => {
    while (performance.now() < until) {
      await operation();
      done++;
    }
  }));
  return done / ((performance.now() - started) / 1000);
}

async function bareDownload(client: S3Client, key: string, size: number): Promise<void> {
  const object = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  let bytes = 0;
  for await (const chunk of object.Body as Readable) bytes += (chunk as Buffer).length;
  if (bytes !== size) throw new Error(`bare download of ${key}: ${bytes} bytes, expected ${size}`);
}

async function timed(operation: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await operation();
  return (performance.now() - started) / 1000;
}

/** s3rver in its own process, on loopback. */
async function startS3rver(directory: string): Promise<{ endpoint: string; process: ChildProcess }> {
  mkdirSync(directory, { recursive: true });
  const port = await freePort();
  const script = `const S3rver = require('s3rver'); new S3rver({ address: '127.0.0.1', port: ${port}, silent: true, directory: ${JSON.stringify(directory)}, configureBuckets: [{ name: '${BUCKET}' }] }).run().then(() => console.log('up'));`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await once(child.stdout!, 'data');
  return { endpoint: `http://127.0.0.1:${port}`, process: child };
}

const s3: BenchCase = { title: 's3', run };
export default s3;
