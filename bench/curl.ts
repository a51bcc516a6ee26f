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

const WRITE_OUT = '\n%{http_code} %{time_total} %{size_download} %{size_upload}';

/** Runs curl once with `args` (options, then the URL); the body goes to `output`, or is kept in the result when null. */
export function curl(args: string[], output: string | null = '/dev/null'): Promise<CurlResult> {
  return new Promise((resolve, reject) => {
    // "Expect:" off: no 100-continue round trip before an upload's body, as nginx's clients would not wait for one either.
    const child = spawn('curl', ['-s', '-S', '-H', 'Expect:', '-w', WRITE_OUT, ...(output === null ? [] : ['-o', output]), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let errors = '';
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const text = Buffer.concat(out).toString('utf8');
      const cut = text.lastIndexOf('\n');
      const [status, seconds, downloaded, uploaded] = text.slice(cut + 1).split(' ').map(Number);
      if (code !== 0) reject(new Error(`curl ${args.join(' ')}: exit ${code} ${errors.trim()}`));
      else resolve({ status: status!, seconds: seconds!, downloaded: downloaded!, uploaded: uploaded!, body: text.slice(0, cut) });
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
