// 1, 10 and 100 clients (curl processes) ask the service at once for one uncached 50 MiB remote media:
// their median time to last byte against the same number of curls downloading it directly from the origin,
// and exactly one request reaching the origin per media; 3 rounds each, after one warm-up fetch. A last row
// puts the one-client time beside a bare node:http pass-through proxy: what the runtime alone costs. The
// service runs as a child process on a scratch PostgreSQL database when the environment names one; the
// origin is a node:http server sending from memory, in a process of its own (remote-origin.ts).
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeKeyFile, generateSigningKey } from '../../src/keys/key-files.js';
import { durationRow, type BenchCase, type BenchRow } from '../bench-row.js';
import { startBareProxy, type BareProxy } from '../bare-proxy.js';
import { curlOk, curlTogether, median } from '../curl.js';
import { startRemoteOrigin } from '../remote-origin.js';
import { createScratchDatabase, startServiceProcess, startWhoamiStandIn, type ChildService } from '../media-processes.js';

const MiB = 1024 * 1024;
const MEDIA_BYTES = 50 * MiB;
const CLIENT_COUNTS = [1, 10, 100];
/** Rounds per client count, each on a media of its own; the median is reported. */
const ROUNDS = 3;
const ORIGIN = 'origin.bench';

const remoteFetch: BenchCase = {
  title: 'Remote fetch: many clients of one uncached remote media against downloading it from the origin',
  async run(env) {
    const media = randomBytes(MEDIA_BYTES);
    const mediaFile = join(env.workDir, 'media.bin');
    writeFileSync(mediaFile, media);
    const origin = await startRemoteOrigin(mediaFile);
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
        const results = await curlTogether(clients, url, ['-H', 'Authorization: Bearer bench-token'], join(env.workDir, 'ours.bin'));
        const upstream = await origin.requests(mediaId);
        const exact = results.every((r) => r.downloaded === MEDIA_BYTES) && sha256File(join(env.workDir, 'ours.bin')) === expected;
        return { seconds: median(results.map((r) => r.seconds)), upstream, exact };
      };
      const directRound = async (clients: number, base = origin.url) => {
        const results = await curlTogether(clients, `${base}/direct`, [], join(env.workDir, 'direct.bin'));
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
      await origin.stop();
    }
  },
};
export default remoteFetch;

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}
