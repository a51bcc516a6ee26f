// Native load generators for the benchmarks (wrk, curl), run as their own processes, so that the client is
// never what limits a figure: a Node client in the bench process reads at a fraction of what curl reads.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { curl, type CurlResult } from './curl.js';

export { median } from './curl.js';

const run = promisify(execFile);
export const WRK = '/usr/bin/wrk';

export interface WrkResult {
  requestsPerSecond: number;
  requests: number;
  /** Responses with a status outside 2xx/3xx, and socket errors (connect, read, write, timeout). */
  failures: number;
  non2xx: number;
  timeouts: number;
  output: string;
}

export interface WrkOptions {
  seconds: number;
  connections: number;
  threads?: number;
  headers?: Record<string, string>;
  /** A wrk Lua script file (request/response/delay hooks). */
  script?: string;
  /** Per-request timeout in seconds. */
  timeout?: number;
}

/** One wrk run; its summary parsed. */
export async function wrk(url: string, options: WrkOptions): Promise<WrkResult> {
  const args = ['-t', String(options.threads ?? 1), '-c', String(options.connections), '-d', `${options.seconds}s`, '--timeout', `${options.timeout ?? 10}s`];
  for (const [name, value] of Object.entries(options.headers ?? {})) args.push('-H', `${name}: ${value}`);
  if (options.script) args.push('-s', options.script);
  const { stdout } = await run(WRK, [...args, url], { maxBuffer: 1 << 20 });
  return parseWrk(stdout);
}

export function parseWrk(output: string): WrkResult {
  const rate = /Requests\/sec:\s+([\d.]+)/.exec(output);
  const total = /(\d+) requests in/.exec(output);
  if (!rate || !total) throw new Error(`wrk printed no summary:\n${output}`);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(output)?.[1] ?? 0);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  const socketErrors = socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0;
  const timeouts = Number(socket?.[4] ?? 0);
  return { requestsPerSecond: Number(rate[1]), requests: Number(total[1]), failures: non2xx + socketErrors, non2xx, timeouts, output };
}

/** One GET with curl into /dev/null: its size, time and status. */
export function curlDownload(url: string, headers: Record<string, string> = {}, maxSeconds = 300): Promise<CurlResult> {
  return curl(['--max-time', String(maxSeconds), ...Object.entries(headers).flatMap(([name, value]) => ['-H', `${name}: ${value}`]), url]);
}

/** A GET that must answer 200 with at least `minBytes`: its speed in MiB/s. */
export async function curlMiBps(url: string, minBytes: number, headers: Record<string, string> = {}): Promise<number> {
  const result = await curlDownload(url, headers);
  if (result.status !== 200 || result.downloaded < minBytes) throw new Error(`${url}: HTTP ${result.status}, ${result.downloaded} bytes, expected ${minBytes}`);
  return result.downloaded / result.seconds / (1024 * 1024);
}
