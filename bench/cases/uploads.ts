// Upload throughput of the service against nginx receiving the same body into a file (WebDAV PUT), curl as
// the client of both: one 100 MiB body (median of 3), and 10 KiB bodies from 16 connections with wrk.
// The service runs as a child process on a scratch PostgreSQL database when the environment names one.
// Both get the body the same way (curl -T streams the file; --data-binary first reads it into memory and
// sends it measurably slower), each round's body is new, so the service cannot skip the flush of a body it
// already holds, and one untimed smaller body warms both up first. nginx does not flush what it receives;
// the service makes it durable (fdatasync) before it answers, as it must before a row may point at it.
// Beside them, for comparison only, a bare node:http server piping the body to a file and fdatasyncing it.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startBareFileServer, type BareFileServer } from '../bare-file-server.js';
import { throughputRow, type BenchCase, type BenchRow } from '../bench-row.js';
import { curlOk, median } from '../curl.js';
import { createScratchDatabase, flushFile, startNginx, startServiceProcess, startWhoamiStandIn, writeRandomFile, type ChildService, type Nginx } from '../media-processes.js';

const MiB = 1024 * 1024;
const LARGE = 100 * MiB;
const WARM_UP = 32 * MiB;
const SMALL = 10 * 1024;
const ROUNDS = 3;
const WRK_SECONDS = 5;
const WRK_CONNECTIONS = 16;
const TOKEN = 'Bearer bench-token';

const uploads: BenchCase = {
  title: 'Uploads: the service against nginx (WebDAV PUT to a file)',
  async run(env) {
    if (!env.nginx) return [];
    const files = join(env.workDir, 'files');
    mkdirSync(files, { recursive: true });
    // A new body each round: a body the service already holds is deduplicated, without a flush.
    const large = Array.from({ length: ROUNDS }, (_, round) => join(files, `large-${round}.bin`));
    const small = join(files, 'small.bin');
    for (const file of large) await writeRandomFile(file, LARGE);
    const warmUp = join(files, 'warm-up.bin');
    await writeRandomFile(warmUp, WARM_UP);
    writeFileSync(small, randomBytes(SMALL));
    const database = env.databaseUrl ? await createScratchDatabase(env.databaseUrl) : undefined;
    const whoami = await startWhoamiStandIn();
    let service: ChildService | undefined;
    let nginx: Nginx | undefined;
    let bare: BareFileServer | undefined;
    try {
      service = await startServiceProcess(join(env.workDir, 'service'), whoami.url, database?.url, false);
      nginx = await startNginx(join(env.workDir, 'nginx'), files, env.nginx);
      bare = await startBareFileServer(join(env.workDir, 'bare'));
      const ourUrl = `${service.url}/_matrix/media/v3/upload`;
      const ourArgs = (file: string) => ['-X', 'POST', '-H', `Authorization: ${TOKEN}`, '-H', 'Content-Type: application/octet-stream', '-T', file, ourUrl];
      const nginxArgs = (file: string, name: string) => ['-T', file, `${nginx!.url}/upload/${name}`];
      // Untimed: the service's first large body runs its code unoptimised, at a fraction of the speed of later ones.
      await curlOk(ourArgs(warmUp));
      await curlOk(nginxArgs(warmUp, 'warm-up.bin'));
      await flushFile(join(files, 'upload', 'warm-up.bin'));
      await curlOk(['-T', warmUp, `${bare.url}/upload/warm-up.bin`]);
      const ours: number[] = [];
      const reference: number[] = [];
      const bareNode: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        // Alternating, so that a burst of load from elsewhere on the machine hits both sides alike.
        ours.push(LARGE / MiB / (await curlOk(ourArgs(large[round]!))).seconds);
        reference.push(LARGE / MiB / (await curlOk(nginxArgs(large[round]!, `put-${round}.bin`))).seconds);
        // What nginx left unflushed is flushed now, untimed, not during the service's next round.
        await flushFile(join(files, 'upload', `put-${round}.bin`));
        bareNode.push(LARGE / MiB / (await curlOk(['-T', large[round]!, `${bare.url}/upload/put-${round}.bin`])).seconds);
      }
      const rows: BenchRow[] = [throughputRow('100 MiB upload, 1 client (curl -T, median of 3)', 'MiB/s', median(ours), 'nginx PUT', median(reference), 0.8,
        'a new body each round; nginx does not fdatasync, the service does')];
      const runtime = throughputRow('100 MiB upload, beside a bare node:http server (pipe to a file, fdatasync)', 'MiB/s', median(ours), 'bare node:http', median(bareNode), undefined);
      rows.push({ ...runtime, note: `for comparison only: the bare server at ${(median(bareNode) / median(reference)).toFixed(2)}× nginx` });
      const smallOurs = await wrkUpload(env.workDir, ourUrl, 'POST', small, { Authorization: TOKEN, 'Content-Type': 'application/octet-stream' });
      const smallNginx = await wrkUpload(env.workDir, `${nginx.url}/upload/small.bin`, 'PUT', small, {});
      rows.push(throughputRow(`10 KiB upload, ${WRK_CONNECTIONS} connections (wrk)`, 'req/s', smallOurs, 'nginx PUT', smallNginx, undefined, 'the same body each time: deduplicated by the service'));
      return rows;
    } finally {
      await nginx?.stop();
      await bare?.stop();
      await service?.stop();
      await database?.drop();
      whoami.server.close();
    }
  },
};
export default uploads;

/** Requests per second of wrk sending `file` as the body; an error answer fails the case. */
async function wrkUpload(workDir: string, url: string, method: string, file: string, headers: Record<string, string>): Promise<number> {
  const script = join(workDir, `wrk-${method}.lua`);
  writeFileSync(script, [
    `local f = io.open(${JSON.stringify(file)}, "rb")`,
    `wrk.method = ${JSON.stringify(method)}`,
    'wrk.body = f:read("*a")',
    'f:close()',
    ...Object.entries(headers).map(([name, value]) => `wrk.headers[${JSON.stringify(name)}] = ${JSON.stringify(value)}`),
    '',
  ].join('\n'));
  const child = spawn('wrk', ['-t1', `-c${WRK_CONNECTIONS}`, `-d${WRK_SECONDS}s`, '-s', script, url], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const [code] = await once(child, 'close');
  const perSecond = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (code !== 0 || !perSecond) throw new Error(`wrk ${url}: exit ${code}\n${out}`);
  if (/Non-2xx or 3xx responses/.test(out)) throw new Error(`wrk ${url}: some answers were errors\n${out}`);
  return Number(perSecond[1]);
}
