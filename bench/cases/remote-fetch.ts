// 1, 10 and 100 clients (curl processes) ask the service at once for one uncached 50 MiB remote media:
// their median time to last byte against the same number of curls downloading it directly from the origin,
// and exactly one request reaching the origin per media. The service runs as a child process on a scratch
// PostgreSQL database when the environment names one; the origin is a node:http server sending from memory.
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { writeKeyFile, generateSigningKey } from '../../src/keys/key-files.js';
import { durationRow, type BenchCase, type BenchRow } from '../bench-row.js';
import { curlOk, median, type CurlResult } from '../curl.js';
import { createScratchDatabase, startServiceProcess, startWhoamiStandIn, type ChildService } from '../media-processes.js';

const MiB = 1024 * 1024;
const MEDIA_BYTES = 50 * MiB;
const CLIENT_COUNTS = [1, 10, 100];
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
    try {
      service = await startServiceProcess(join(env.workDir, 'service'), whoami.url, database?.url, false,
        [`federation: {serverOverrides: {${ORIGIN}: ${JSON.stringify(origin.url)}}, remoteMaxBytes: ${64 * MiB}}`],
        { homeserverFields: [`signingKeyPath: ${JSON.stringify(keyFile)}`] });
      const expected = createHash('sha256').update(media).digest('hex');
      const rows: BenchRow[] = [];
      for (const clients of CLIENT_COUNTS) {
        const direct = await allAtOnce(clients, join(env.workDir, 'direct.bin'), `${origin.url}/direct`, []);
        const mediaId = `media${clients}`;
        // The longest wait the service allows: on a loaded machine a slow start is measured, not refused.
        const url = `${service.url}/_matrix/client/v1/media/download/${ORIGIN}/${mediaId}?timeout_ms=60000`;
        // The token checked (and cached) just before: the clients measure the fetch, not the token check.
        await curlOk(['-H', 'Authorization: Bearer bench-token', `${service.url}/_matrix/client/v1/media/config`]);
        const ours = await allAtOnce(clients, join(env.workDir, 'ours.bin'), url, ['-H', 'Authorization: Bearer bench-token']);
        const upstream = origin.requests(mediaId);
        const complete = [...direct, ...ours].every((r) => r.downloaded === MEDIA_BYTES);
        const exact = sha256File(join(env.workDir, 'ours.bin')) === expected && sha256File(join(env.workDir, 'direct.bin')) === expected;
        const note = `${upstream} upstream request${upstream === 1 ? '' : 's'}${complete && exact ? '' : '; SOME CLIENT GOT WRONG BYTES'}`;
        const row = durationRow(`${clients} client${clients === 1 ? '' : 's'}, one uncached 50 MiB remote media: time to last byte (median)`,
          median(ours.map((r) => r.seconds)), 'direct from the origin', median(direct.map((r) => r.seconds)), 1.2, note);
        rows.push({ ...row, met: row.met && upstream === 1 && complete && exact });
      }
      return rows;
    } finally {
      await service?.stop();
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
