// The peak-memory row shared by the download cases: the service's VmHWM while many curl processes
// download one 1 GiB media at once (issue 13's and issue 10's < 200 MiB target).
import { limitRow, type BenchRow } from './bench-row.js';
import { memoryOf, resetPeakMemory, type ChildService } from './media-processes.js';
import { curlDownload } from './native-clients.js';

export const HUGE_CLIENTS = 20;
const RSS_LIMIT_MIB = 200;
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** `name`: the row's case name; `timeoutS`: each curl's limit, generous for a slow datastore. */
export async function peakDuringHugeDownloads(
  service: ChildService, url: string, headers: Record<string, string>, postgres: boolean, name: string, timeoutS: number,
): Promise<BenchRow> {
  const pid = service.child.pid!;
  const idle = memoryOf(pid, 'VmRSS');
  resetPeakMemory(pid);
  const started = performance.now();
  const results = await Promise.all(Array.from({ length: HUGE_CLIENTS }, () => curlDownload(url, headers, timeoutS)));
  const seconds = (performance.now() - started) / 1000;
  const peak = memoryOf(pid, 'VmHWM') / MiB;
  if (results.some((r) => r.status !== 200 || r.downloaded !== GiB)) throw new Error(`a 1 GiB download failed: ${results.map((r) => `HTTP ${r.status}, ${r.downloaded} bytes`).join('; ')}`);
  const note = `${Math.round((HUGE_CLIENTS * GiB) / MiB / seconds)} MiB/s in total over ${seconds.toFixed(0)} s; idle RSS after restart ${Math.round(idle / MiB)} MiB`
    + (postgres ? '' : '; PGlite runs inside the service, its WASM heap counts in this RSS');
  return limitRow(name, 'MiB', peak, RSS_LIMIT_MIB, note);
}
