// What observing costs: federation downloads of 10 KiB media per second with metrics and the access log off
// and on (an in-process Node client, the same for both: for the service against its reference, with wrk,
// see `npm run bench`); then the cost of authenticating one request (keys cached) against one raw verify.
// Metrics and the access log are measured off and on, alternating. Loopback only, about a minute. Run: npx tsc -p tsconfig.json && node dist/bench/federation-download.js
// On the embedded PGlite by default; MEDIA_REPO_BENCH_DATABASE_URL=postgres://… runs it on a scratch database there.
import { createPublicKey, randomBytes, verify } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream, mkdtempSync, writeFileSync } from 'node:fs';
import { Agent, createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buildConfig } from '../src/config/config.js';
import knexFactory from 'knex';
import { openDatabase, openEmbedded, type Database } from '../src/db/database.js';
import { authenticateRequest } from '../src/federation/inbound-auth.js';
import { createLogger } from '../src/log.js';
import { signedBytes } from '../src/matrix/signed-json.js';
import { buildAuthorizationHeader, requestSigningJson } from '../src/matrix/x-matrix.js';
import { Metrics } from '../src/metrics/metrics.js';
import { startService, type RunningService } from '../src/service.js';
import { PEER_KEY_ID as KEY_ID, startFederationPeer } from './federation-peer.js';

const MEDIA_BYTES = 10 * 1024;
const CONCURRENCY = 16;
const SECONDS_PER_RUN = 5;
const VERIFY_SECONDS = 2;
const ORIGIN = 'peer.bench';
const DESTINATION = 'hs.bench';
const MEDIA_ID = 'benchMedia';
const URI = `/_matrix/federation/v1/media/download/${MEDIA_ID}`;

async function listen(server: Server): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Completed requests per second with CONCURRENCY keep-alive clients, each body read to the end and its size checked. */
async function requestsPerSecond(base: string, headers: Record<string, string>, minBytes: number): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const fetchOne = () => new Promise<void>((resolve, reject) => {
    request(`${base}${URI}`, { agent, headers }, (res) => {
      let size = 0;
      res.on('data', (chunk: Buffer) => { size += chunk.length; });
      res.on('end', () => (res.statusCode === 200 && size >= minBytes ? resolve() : reject(new Error(`status ${res.statusCode}, ${size} bytes`))));
    }).on('error', reject).end();
  });
  const run = async (seconds: number) => {
    let count = 0;
    const deadline = performance.now() + seconds * 1000;
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < deadline) {
        await fetchOne();
        count++;
      }
    }));
    return count;
  };
  await run(1); // warm-up: connections, JIT, caches
  const start = performance.now();
  const count = await run(SECONDS_PER_RUN);
  agent.destroy();
  return count / ((performance.now() - start) / 1000);
}

/** Calls per second of an async operation run back to back for `seconds`. */
async function callsPerSecond(operation: () => unknown, seconds: number): Promise<number> {
  for (let i = 0; i < 500; i++) await operation();
  let count = 0;
  const start = performance.now();
  while (performance.now() - start < seconds * 1000) {
    for (let i = 0; i < 200; i++, count++) await operation();
  }
  return count / ((performance.now() - start) / 1000);
}

const dir = mkdtempSync(join(tmpdir(), 'bench-federation-'));
const content = randomBytes(MEDIA_BYTES);
const peer = await startFederationPeer(ORIGIN);
const { signer, keyServerUrl } = peer;

/** The service with metrics and the access log (into a file, as to a log collector) on or off. */
function benchConfig(observe: boolean) {
  return buildConfig({
    listen: { host: '127.0.0.1', port: 0 },
    logLevel: observe ? 'info' : 'silent',
    dataDir: dir,
    masterKey: randomBytes(32).toString('hex'),
    homeservers: [{ name: DESTINATION, clientApi: 'http://127.0.0.1:1' }],
    federation: { serverOverrides: { [ORIGIN]: keyServerUrl } },
    accessLog: { enabled: observe },
    metrics: { enabled: observe, host: '127.0.0.1', port: 0 },
  }, join(dir, 'config.yaml'));
}
/** A scratch database on the PostgreSQL named by the environment, dropped at the end; else embedded. */
async function benchDatabase(): Promise<{ db: Database; label: string; drop(): Promise<void> }> {
  const url = process.env.MEDIA_REPO_BENCH_DATABASE_URL;
  if (!url) return { db: await openEmbedded(), label: 'embedded PGlite', drop: async () => undefined };
  const name = `bench_${randomBytes(6).toString('hex')}`;
  const admin = knexFactory({ client: 'pg', connection: url, pool: { min: 0, max: 1 } });
  await admin.raw(`CREATE DATABASE ${name}`);
  const scratch = new URL(url);
  scratch.pathname = `/${name}`;
  const db = await openDatabase({ url: scratch.toString(), dataDir: dir, poolMax: 10 });
  return {
    db,
    label: 'PostgreSQL',
    drop: async () => {
      await admin.raw(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.destroy();
    },
  };
}


const signedRequest = { method: 'GET', uri: URI, origin: ORIGIN, destination: DESTINATION };
const authorization = buildAuthorizationHeader(signedRequest, KEY_ID, signer);

/** A fresh service and database with the bench media; `measure` runs against it, then both go. */
async function withService<T>(observe: boolean, measure: (service: RunningService) => Promise<T>): Promise<{ result: T; label: string }> {
  const database = await benchDatabase();
  const log = observe ? createLogger('info', createWriteStream(join(dir, 'access.log'), { flags: 'a' })) : createLogger('silent');
  const service = await startService(benchConfig(observe), log, database.db);
  try {
    const { media, datastores } = service.services;
    const blob = await datastores.forKind('local_media').writeStream(Readable.from([content]), { maxBytes: MEDIA_BYTES });
    await media.insertMedia({ serverName: DESTINATION, mediaId: MEDIA_ID, isRemote: false, userId: `@bench:${DESTINATION}`, contentType: 'application/octet-stream', uploadName: 'bench.bin' }, blob);
    return { result: await measure(service), label: database.label };
  } finally {
    await service.close();
    await database.drop();
  }
}

// Off and on, alternating pairs: the best of each mode, so a noisy neighbour hurts both alike.
const PAIRS = Number(process.env.MEDIA_REPO_BENCH_PAIRS ?? 3);
const rates: Record<'off' | 'on', number[]> = { off: [], on: [] };
let databaseLabel = '';
for (const observe of Array.from({ length: 2 * PAIRS }, (_, i) => i % 2 === 1)) {
  const { result, label } = await withService(observe, (service) => requestsPerSecond(service.url, { authorization, host: DESTINATION }, MEDIA_BYTES));
  rates[observe ? 'on' : 'off'].push(result);
  databaseLabel = label;
}
const federation = Math.max(...rates.off);
const observed = Math.max(...rates.on);

// The same bytes from a file, by the plainest server node offers.
const file = join(dir, 'media.bin');
writeFileSync(file, content);
const bare = createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': MEDIA_BYTES });
  createReadStream(file).pipe(res);
});
const bareUrl = await listen(bare);
const plain = await requestsPerSecond(bareUrl, {}, MEDIA_BYTES);

// Authentication alone (keys already in the keyring's memory) against one raw verify of the same bytes.
const inboundOf = (service: RunningService) => ({ method: 'GET', uri: URI, tenant: service.services.tenants.byName(DESTINATION)!, authorization: [authorization] });
const message = signedBytes(requestSigningJson(signedRequest));
const signature = signer.sign(message);
const publicKey = createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), signer.publicKey]), format: 'der', type: 'spki' });
const { result: authRate } = await withService(false, async (service) => {
  const inbound = inboundOf(service);
  const authenticated = await authenticateRequest(service.services.keyring, inbound);
  if (authenticated.origin !== ORIGIN) throw new Error('the bench request does not authenticate');
  return callsPerSecond(() => authenticateRequest(service.services.keyring, inbound), VERIFY_SECONDS);
});
const rawRate = await callsPerSecond(() => {
  if (!verify(null, message, publicKey, signature)) throw new Error('raw verify failed');
}, VERIFY_SECONDS);

// What observing one request costs in CPU, without the noise of a whole request: the metrics update and
// the access log line (into a file) that the request log writes when a response closes.
const metrics = new Metrics();
const accessLog = createLogger('info', createWriteStream(join(dir, 'cost.log'))).child({ logger: 'access' });
const finished = { method: 'GET', family: 'federation' as const, homeserver: DESTINATION, status: 200, durationSeconds: 0.002, bytesIn: 400, bytesOut: 10_600, aborted: false };
const observeRate = await callsPerSecond(() => {
  metrics.requestFinished(finished);
  accessLog.info({ ...finished, durationMs: 2, ip: '127.0.0.1', remoteServer: ORIGIN }, 'request');
}, VERIFY_SECONDS);

peer.close();
bare.close();

const format = (n: number) => Math.round(n).toLocaleString('en-US');
const micros = (rate: number) => `${(1e6 / rate).toFixed(1)} µs`;
console.log(`Federation download of ${MEDIA_BYTES / 1024} KiB media on ${databaseLabel}, ${CONCURRENCY} keep-alive clients in the same process, ${SECONDS_PER_RUN} s each, ${process.version}`);
console.log('');
console.log(`${'server'.padEnd(44)}${'downloads/s'.padStart(14)}`);
console.log(`${'media repo (X-Matrix, DB lookup, multipart)'.padEnd(44)}${format(federation).padStart(14)}`);
console.log(`${'bare node:http streaming the file'.padEnd(44)}${format(plain).padStart(14)}`);
console.log(`${'ratio media repo / bare'.padEnd(44)}${`${(federation / plain).toFixed(2)}x`.padStart(14)}`);
console.log(`${'media repo, metrics + access log on'.padEnd(44)}${format(observed).padStart(14)}`);
const pairRatios = rates.on.map((on, i) => on / rates.off[i]!).sort((x, y) => x - y);
console.log(`${'ratio on / off, best of each'.padEnd(44)}${`${(observed / federation).toFixed(3)}x`.padStart(14)}`);
console.log(`${'ratio on / off, median of pairs'.padEnd(44)}${`${pairRatios[Math.floor(pairRatios.length / 2)]!.toFixed(3)}x`.padStart(14)}`);
console.log(`(runs, downloads/s: off ${rates.off.map(format).join(', ')}; on ${rates.on.map(format).join(', ')})`);
console.log('');
console.log(`${'per request'.padEnd(44)}${'calls/s'.padStart(14)}${'cost'.padStart(12)}`);
console.log(`${'authenticateRequest (keys cached)'.padEnd(44)}${format(authRate).padStart(14)}${micros(authRate).padStart(12)}`);
console.log(`${'raw node:crypto Ed25519 verify'.padEnd(44)}${format(rawRate).padStart(14)}${micros(rawRate).padStart(12)}`);
console.log(`${'ratio authenticate / raw verify (cost)'.padEnd(44)}${`${(rawRate / authRate).toFixed(2)}x`.padStart(14)}`);
console.log(`${'metrics + access log line, one request'.padEnd(44)}${format(observeRate).padStart(14)}${micros(observeRate).padStart(12)}`);
console.log(`${'  as a share of one download (best, off)'.padEnd(44)}${`${((100 * federation) / observeRate).toFixed(1)}%`.padStart(14)}`);
