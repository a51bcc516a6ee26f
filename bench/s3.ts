// The service on an S3 datastore against the bare S3 client (@aws-sdk/lib-storage Upload, GetObject) moving
// the same bytes to the same s3rver in the same run: 100 MiB and 10 KiB, both directions (ratios); then
// the service's peak RSS while 20 clients stream one 1 GiB S3 object. s3rver, the service and this
// client are three processes sharing the machine's CPUs.
// Run: npx tsc -p tsconfig.json && [MEDIA_REPO_BENCH_DATABASE_URL=postgres://...] node dist/bench/s3.js
import { spawn, type ChildProcess } from 'node:child_process';
import { createReadStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { agent, createScratchDatabase, freePort, http, memoryOf, resetPeakMemory, startServiceProcess, startWhoamiStandIn, writeRandomFile, type HttpResult } from './media-processes.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const LARGE_REPEATS = 3;
const SMALL_REQUESTS = 400;
const SMALL_CONCURRENCY = 16;
const HUGE_CLIENTS = 20;
const AUTH = { authorization: 'Bearer bench-token' };
const BUCKET = 'media';

const work = mkdtempSync(join(tmpdir(), 'bench-s3-'));

async function main(): Promise<void> {
  const large = join(work, 'large.bin');
  const small = join(work, 'small.bin');
  const huge = join(work, 'huge.bin');
  await writeRandomFile(large, 100 * MiB);
  writeFileSync(small, randomBytes(10 * KiB));
  await writeRandomFile(huge, GiB);

  const s3 = await startS3rver(join(work, 's3rver'));
  const serverUrl = process.env.MEDIA_REPO_BENCH_DATABASE_URL;
  const database = serverUrl ? await createScratchDatabase(serverUrl) : undefined;
  console.log(`database: ${database ? 'PostgreSQL' : 'embedded PGlite'}; ${cpus().length} CPUs, load average ${loadavg()[0]!.toFixed(1)}`);
  const whoami = await startWhoamiStandIn();
  const datastores = [`datastores: [${JSON.stringify({
    id: 's3', type: 's3', forKinds: ['all'],
    opts: { endpoint: s3.endpoint, bucketName: BUCKET, forcePathStyle: true, prefix: 'service/', accessKeyId: 'S3RVER', accessSecret: 'S3RVER' },
  })}]`];
  let service = await startServiceProcess(join(work, 'service'), whoami.url, database?.url, false, datastores);
  const client = new S3Client({
    endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
  });
  let bareKeys = 0;
  const bareUpload = (file: string) => new Upload({ client, params: { Bucket: BUCKET, Key: `bare/${bareKeys++}`, Body: createReadStream(file) } }).done();
  const bareDownload = (key: string, size: number) => async () => {
    const object = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    let bytes = 0;
    for await (const chunk of object.Body as Readable) bytes += (chunk as Buffer).length;
    if (bytes !== size) throw new Error(`bare download: ${bytes} bytes`);
  };
  const uploadOurs = (file: string, size: number) => expectOk(http(`${service.url}/_matrix/media/v3/upload`, {
    method: 'POST', headers: { ...AUTH, 'content-type': 'application/octet-stream' }, file, size,
  }));
  const downloadPath = async (file: string, size: number) => {
    const mediaId = String(JSON.parse((await uploadOurs(file, size)).body).content_uri).split('/').pop();
    return `/_matrix/client/v1/media/download/bench.example/${mediaId}`;
  };
  const downloadOurs = (path: string, size: number) => async () => {
    const result = await expectOk(http(`${service.url}${path}`, { headers: AUTH }));
    if (result.bytes !== size) throw new Error(`service download: ${result.bytes} bytes`);
  };
  try {
    const rows: Array<[string, string, number, number]> = [];
    const largePath = await downloadPath(large, 100 * MiB);
    await bareUpload(large);
    const smallPath = await downloadPath(small, 10 * KiB);
    await bareUpload(small);
    rows.push(['100 MiB upload (1 client)', 'MiB/s',
      100 * (await perSecond(LARGE_REPEATS, 1, () => uploadOurs(large, 100 * MiB))), 100 * (await perSecond(LARGE_REPEATS, 1, () => bareUpload(large)))]);
    rows.push(['100 MiB download (1 client)', 'MiB/s',
      100 * (await perSecond(LARGE_REPEATS, 1, downloadOurs(largePath, 100 * MiB))), 100 * (await perSecond(LARGE_REPEATS, 1, bareDownload('bare/0', 100 * MiB)))]);
    rows.push([`10 KiB upload (${SMALL_CONCURRENCY} clients)`, 'req/s',
      await perSecond(SMALL_REQUESTS, SMALL_CONCURRENCY, () => uploadOurs(small, 10 * KiB)), await perSecond(SMALL_REQUESTS, SMALL_CONCURRENCY, () => bareUpload(small))]);
    rows.push([`10 KiB download (${SMALL_CONCURRENCY} clients)`, 'req/s',
      await perSecond(SMALL_REQUESTS, SMALL_CONCURRENCY, downloadOurs(smallPath, 10 * KiB)), await perSecond(SMALL_REQUESTS, SMALL_CONCURRENCY, bareDownload('bare/1', 10 * KiB))]);
    console.log('media-repo on S3 vs the bare S3 client, same s3rver, same run, loopback');
    console.log(`${'case'.padEnd(30)}${'media-repo'.padStart(14)}${'bare S3'.padStart(14)}${'ratio'.padStart(8)}`);
    for (const [label, unit, ours, bare] of rows) {
      console.log(`${label.padEnd(30)}${`${ours.toFixed(0)} ${unit}`.padStart(14)}${`${bare.toFixed(0)} ${unit}`.padStart(14)}${(ours / bare).toFixed(2).padStart(8)}`);
    }

    const hugePath = await downloadPath(huge, GiB);
    // A fresh process, so that the peak belongs to the downloads.
    await service.stop();
    service = await startServiceProcess(join(work, 'service'), whoami.url, database?.url, false, datastores);
    const pid = service.child.pid!;
    const baseline = memoryOf(pid, 'VmRSS');
    resetPeakMemory(pid);
    const started = process.hrtime.bigint();
    const results = await Promise.all(Array.from({ length: HUGE_CLIENTS }, () => expectOk(http(`${service.url}${hugePath}`, { headers: AUTH }))));
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (results.some((r) => r.bytes !== GiB)) throw new Error('a 1 GiB download came back short');
    console.log(`${HUGE_CLIENTS} concurrent downloads of a 1 GiB S3 object: ${(HUGE_CLIENTS * GiB / MiB / seconds).toFixed(0)} MiB/s in total, ${seconds.toFixed(1)} s`);
    console.log(`service RSS: ${mib(baseline)} after a restart; peak (VmHWM) during the downloads ${mib(memoryOf(pid, 'VmHWM'))} (goal < 200 MiB)`);
  } finally {
    client.destroy();
    await service.stop();
    await database?.drop();
    whoami.server.close();
    agent.destroy();
    s3.process.kill('SIGTERM');
  }
}

/** s3rver in its own process, so that its memory and CPU are not counted as the client's. */
async function startS3rver(directory: string): Promise<{ endpoint: string; process: ChildProcess }> {
  mkdirSync(directory, { recursive: true });
  const port = await freePort();
  const script = `const S3rver = require('s3rver'); new S3rver({ address: '127.0.0.1', port: ${port}, silent: true, directory: ${JSON.stringify(directory)}, configureBuckets: [{ name: '${BUCKET}' }] }).run().then(() => console.log('up'));`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await once(child.stdout!, 'data');
  return { endpoint: `http://127.0.0.1:${port}`, process: child };
}

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

async function expectOk(pending: Promise<HttpResult>): Promise<HttpResult> {
  const result = await pending;
  if (result.status < 200 || result.status > 299) throw new Error(`HTTP ${result.status}: ${result.body.slice(0, 200)}`);
  return result;
}

const mib = (bytes: number) => `${(bytes / MiB).toFixed(0)} MiB`;

try {
  await main();
} finally {
  rmSync(work, { recursive: true, force: true });
}
