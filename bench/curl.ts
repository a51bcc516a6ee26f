// curl as the benchmarks' client: a native process, so the client is never the bottleneck of what it measures.
import { spawn } from 'node:child_process';

export interface CurlResult {
  status: number;
  /** Seconds from start to the last byte (curl's time_total). */
  seconds: number;
  downloaded: number;
  uploaded: number;
  /** The answer, when kept. */
  body: string;
}

/** What curl writes out after each transfer (-w), read back by `measured`. */
const MEASURES = '%{http_code} %{time_total} %{size_download} %{size_upload}';

function measured(line: string, body: string): CurlResult {
  const [status, seconds, downloaded, uploaded] = line.split(' ').map(Number);
  return { status: status!, seconds: seconds!, downloaded: downloaded!, uploaded: uploaded!, body };
}

/** Runs curl once with `args` (options, then the URL); the body goes to `output`, or is kept in the result when null. */
export function curl(args: string[], output: string | null = '/dev/null'): Promise<CurlResult> {
  return new Promise((resolve, reject) => {
    // "Expect:" off: no 100-continue round trip before an upload's body, as nginx's clients would not wait for one either.
    const child = spawn('curl', ['-s', '-S', '-H', 'Expect:', '-w', `\n${MEASURES}`, ...(output === null ? [] : ['-o', output]), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let errors = '';
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const text = Buffer.concat(out).toString('utf8');
      const cut = text.lastIndexOf('\n');
      if (code !== 0) reject(new Error(`curl ${args.join(' ')}: exit ${code} ${errors.trim()}`));
      else resolve(measured(text.slice(cut + 1), text.slice(0, cut)));
    });
  });
}

/** The curl result, or an error naming the status and the answer when it is not 2xx. */
export async function curlOk(args: string[], output: string | null = '/dev/null'): Promise<CurlResult> {
  const result = await curl(args, output);
  if (result.status < 200 || result.status > 299) throw new Error(`curl ${args.at(-1)}: HTTP ${result.status} ${result.body.slice(0, 200)}`);
  return result;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Transfers per curl process in curlTogether. */
const TRANSFERS_PER_CURL = 25;

/**
 * `count` downloads of `url` started together: a few curl processes, each running its share with --parallel.
 * One curl process per download would start them seconds apart on a loaded machine (each spawn blocks the
 * bench's event loop), turning "together" into a queue. The first download's body goes to `keptFile`.
 */
export async function curlTogether(count: number, url: string, args: string[], keptFile: string): Promise<CurlResult[]> {
  const shares = Array.from({ length: Math.ceil(count / TRANSFERS_PER_CURL) }, (_, i) => Math.min(TRANSFERS_PER_CURL, count - i * TRANSFERS_PER_CURL));
  const runs = shares.map((share, curlIndex) => new Promise<CurlResult[]>((resolve, reject) => {
    const outputs = Array.from({ length: share }, (_, i) => ['-o', curlIndex === 0 && i === 0 ? keptFile : '/dev/null', url]).flat();
    const options = ['-s', '-S', '--parallel', '--parallel-immediate', '--parallel-max', String(share), '-w', `${MEASURES}\n`];
    const child = spawn('curl', [...options, ...args, ...outputs], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let errors = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const results = out.trim().split('\n').map((line) => measured(line, ''));
      const failed = results.find((r) => r.status < 200 || r.status > 299);
      if (code !== 0 || results.length !== share || failed) reject(new Error(`curl --parallel ${url}: exit ${code}, ${results.length} of ${share} answered${failed ? `, HTTP ${failed.status}` : ''} ${errors.trim()}`));
      else resolve(results);
    });
  }));
  return (await Promise.all(runs)).flat();
}
