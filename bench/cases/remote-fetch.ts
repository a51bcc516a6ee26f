// 1, 10 and 100 clients (curl processes) ask the service at once for one uncached 50 MiB remote media:
// their median time to last byte against the same number of curls downloading it directly from the origin,
// and exactly one request reaching the origin per media; 3 rounds each, after one warm-up fetch. A last row
// puts the one-client time beside a bare node:http pass-through proxy: what the runtime alone costs. The
// service runs as a child process on a scratch PostgreSQL database when the environment names one; the
// origin is a node:http server sending from memory.
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { writeKeyFile, generateSigningKey } from '../../src/keys/key-files.js';
import { durationRow, type BenchCase, type BenchRow } from '../bench-row.js';
import { startBareProxy, type BareProxy } from '../bare-proxy.js';
import { curlOk, median, type CurlResult } from '../curl.js';
import { createScratchDatabase, startServiceProcess, startWhoamiStandIn, type ChildService } from '../media-processes.js';

const MiB = 1024 * 1024;
const MEDIA_BYTES = 50 * MiB;
const CLIENT_COUNTS = [1, 10, 100];
/** Rounds per client count, each on a media of its own; the median is reported. */
const ROUNDS = 3;
const ORIGIN = 'origin.bench';
const BOUNDARY = 'benchboundary';

const remoteFetch: BenchCase = {
  title: 'Remote fetch: many clients of one uncached remote media against downloading it from the origin',
  async run(env) {
    const media = randomBytes(MEDIA_BYTES);
    const origin = await startOrigin(media);
    const keyFile = join(env.workDir, 'bench.signing.key');
    await writeKeyFile(keyFile, [generateSigningKey()], 'synapse');
    const database = env.databaseUrl ? await createScratchDatabase(env.databaseUrl) : undefined;
    const whoami = await startWhoamiStandIn();
    let service: ChildService | undefined;
    let proxy: BareProxy | undefined;
    try {
      service = await startServiceProcess(join(env.workDir, 'service'), whoami.url, database?.url, false,
        [`federation: {serverOverrides: {${ORIGIN}: ${JSON.stringify(origin.url)}}, remoteMaxBytes: ${64 * MiB}}`],
        { homeserverFields: [`signingKeyPath: ${JSON.stringify(keyFile)}`] });
      proxy = await startBareProxy(origin.url);
      const expected = createHash('sha256').update(media).digest('hex');
      let fetches = 0;
      const ourRound = async (clients: number) => {
        // The token checked (and cached) just before: the clients measure the fetch, not the token check.
        await curlOk(['-H', 'Authorization: Bearer bench-token', `${service!.url}/_matrix/client/v1/media/config`]);
        const mediaId = `media${++fetches}`;
        // The longest wait the service allows: on a loaded machine a slow start is measured, not refused.
        const url = `${service!.url}/_matrix/client/v1/media/download/${ORIGIN}/${mediaId}?timeout_ms=60000`;
        const results = await allAtOnce(clients, join(env.workDir, 'ours.bin'), url, ['-H', 'Authorization: Bearer bench-token']);
        const upstream = origin.requests(mediaId);
        const exact = results.every((r) => r.downloaded === MEDIA_BYTES) && sha256File(join(env.workDir, 'ours.bin')) === expected;
        return { seconds: median(results.map((r) => r.seconds)), upstream, exact };
      };
      const directRound = async (clients: number, base = origin.url) => {
        const results = await allAtOnce(clients, join(env.workDir, 'direct.bin'), `${base}/direct`, []);
        if (!results.every((r) => r.downloaded === MEDIA_BYTES) || sha256File(join(env.workDir, 'direct.bin')) !== expected) {
          throw new Error('the reference served wrong bytes');
        }
        return median(results.map((r) => r.seconds));
      };
      // Warm-up, as in every other case: connections, JIT, key loading and discovery are not what is measured.
      await directRound(1);
      await ourRound(1);
      const rows: BenchRow[] = [];
      const proxied: number[] = [];
      for (const clients of CLIENT_COUNTS) {
        const direct: number[] = [];
        const ours: Array<Awaited<ReturnType<typeof ourRound>>> = [];
        for (let round = 0; round < ROUNDS; round++) { // alternating, so all see the same load
          direct.push(await directRound(clients));
          ours.push(await ourRound(clients));
          if (clients === 1) proxied.push(await directRound(1, proxy!.url));
        }
        const upstream = ours.map((r) => r.upstream);
        const exact = ours.every((r) => r.exact);
        const note = `upstream requests per media: ${upstream.join(', ')}${exact ? '' : '; SOME CLIENT GOT WRONG BYTES'}`;
        const seconds = median(ours.map((r) => r.seconds));
        const name = `${clients} client${clients === 1 ? '' : 's'}, one uncached 50 MiB remote media: time to last byte (median)`;
        const row = durationRow(name, seconds, 'direct from the origin', median(direct), 1.2, note);
        rows.push({ ...row, met: row.met && exact && upstream.every((n) => n === 1) });
        // What the runtime alone costs for one pass-through: no target, for comparison only.
        if (clients === 1) {
          const bare = durationRow('1 client, the same fetch beside a bare node:http pass-through proxy (no spool, storage or hash)', seconds, 'bare proxy', median(proxied), 1);
          rows.push({ ...bare, target: '', met: undefined });
        }
      }
      return rows;
    } finally {
      await service?.stop();
      await proxy?.stop();
      await database?.drop();
      whoami.server.close();
      origin.close();
    }
  },
};
export default remoteFetch;

/** `clients` curls started together; the first keeps its body in `keptFile` to be hashed. */
function allAtOnce(clients: number, keptFile: string, url: string, args: string[]): Promise<CurlResult[]> {
  return Promise.all(Array.from({ length: clients }, (_, i) => curlOk([...args, url], i === 0 ? keptFile : undefined)));
}

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** The origin: the federation download (multipart/mixed) for the service, the raw bytes for the direct reference. */
async function startOrigin(media: Buffer): Promise<{ url: string; requests(mediaId: string): number; close(): void }> {
  const requests = new Map<string, number>();
  const server = createServer((req, res) => {
    const federation = /^\/_matrix\/federation\/v1\/media\/download\/([^/?]+)/.exec(req.url!);
    if (federation) {
      requests.set(federation[1]!, (requests.get(federation[1]!) ?? 0) + 1);
      res.writeHead(200, { 'Content-Type': `multipart/mixed; boundary=${BOUNDARY}` });
      res.write(`--${BOUNDARY}\r\nContent-Type: application/json\r\n\r\n{}\r\n--${BOUNDARY}\r\nContent-Type: video/mp4\r\n\r\n`);
      void send(res, media, `\r\n--${BOUNDARY}--\r\n`);
    } else if (req.url === '/direct') {
      res.writeHead(200, { 'Content-Type': 'video/mp4', 'Content-Length': String(media.length) });
      void send(res, media, '');
    } else {
      res.writeHead(404).end();
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests: (mediaId) => requests.get(mediaId) ?? 0,
    close: () => server.close(),
  };
}

/** The body in 1 MiB writes, honouring backpressure. */
async function send(res: ServerResponse, media: Buffer, trailer: string): Promise<void> {
  for (let offset = 0; offset < media.length; offset += MiB) {
    if (!res.write(media.subarray(offset, offset + MiB))) await once(res, 'drain');
  }
  res.end(trailer);
}
