// `npm run bench`: every benchmark case in cases/ (each module default-exports a BenchCase), one after
// another, into one table of this service against its reference measured in the same run.
// Arguments filter the cases by file name (e.g. `npm run bench -- downloads`). Exit code 0 when targets
// are missed (the table says so), 1 when a case crashed.
import { accessSync, constants, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { BenchCase, BenchEnvironment, BenchRow } from './bench-row.js';

/** Debian's nginx, else one on PATH. */
function findNginx(): string | undefined {
  const candidates = ['/usr/sbin/nginx', ...(process.env.PATH ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, 'nginx'))];
  return candidates.find((path) => {
    try {
      accessSync(path, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

const COLUMNS: [string, (row: BenchRow) => string][] = [
  ['case', (r) => r.case],
  ['this service', (r) => r.ours],
  ['reference', (r) => r.reference],
  ['ratio', (r) => r.ratio],
  ['target', (r) => r.target],
  ['met', (r) => (r.met === undefined ? '' : r.met ? 'yes' : 'no')],
  ['notes', (r) => r.note ?? ''],
];

/** A Markdown table: readable in a terminal, pasteable into an issue. */
function printTable(rows: BenchRow[]): void {
  const cells = rows.map((row) => COLUMNS.map(([, cell]) => cell(row).replaceAll('|', '\\|')));
  const widths = COLUMNS.map(([name], i) => Math.max(name.length, ...cells.map((c) => c[i]!.length)));
  const line = (values: string[]) => `| ${values.map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i]!))).join(' | ')} |`;
  console.log(line(COLUMNS.map(([name]) => name)));
  console.log(line(widths.map((w, i) => '-'.repeat(i === widths.length - 1 ? 3 : w))));
  for (const row of cells) console.log(line(row));
}

const casesDir = fileURLToPath(new URL('./cases/', import.meta.url));
const filters = process.argv.slice(2);
const files = readdirSync(casesDir)
  .filter((name) => name.endsWith('.js'))
  .sort()
  .filter((name) => filters.length === 0 || filters.some((f) => name.includes(f)));
const databaseUrl = process.env.MEDIA_REPO_BENCH_DATABASE_URL || undefined;
const nginx = findNginx();
const load = loadavg().map((l) => l.toFixed(2)).join(' ');
console.log(`${cpus().length} CPUs, load average ${load} (service, references and clients share them); `
  + `database: ${databaseUrl ? 'PostgreSQL (MEDIA_REPO_BENCH_DATABASE_URL)' : 'embedded PGlite (its WASM heap inflates the service\'s RSS)'}; `
  + `nginx: ${nginx ?? 'not found (its rows are skipped)'}; ${process.version}`);
console.log(`cases: ${files.map((f) => f.replace(/\.js$/, '')).join(', ') || 'none'}`);

const rows: BenchRow[] = [];
let crashed = false;
const started = performance.now();
for (const file of files) {
  const workDir = mkdtempSync(join(tmpdir(), `bench-${file.replace(/\.js$/, '')}-`));
  const caseStarted = performance.now();
  let title = file;
  try {
    const benchCase = (await import(pathToFileURL(join(casesDir, file)).href)).default as BenchCase;
    title = benchCase.title;
    console.error(`${title}: running`);
    const env: BenchEnvironment = { databaseUrl, nginx, workDir };
    rows.push(...(await benchCase.run(env)));
  } catch (error) {
    crashed = true;
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
    console.error(`${title}: crashed: ${message}`);
    rows.push({ case: `${title}: crashed`, ours: '', reference: '', ratio: '', target: '', met: false, note: message.split('\n')[0] });
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
  console.error(`${title}: ${((performance.now() - caseStarted) / 1000).toFixed(0)} s`);
}
console.log('');
printTable(rows);
console.log(`\n${rows.filter((r) => r.met).length} of ${rows.filter((r) => r.met !== undefined).length} targets met in ${((performance.now() - started) / 60_000).toFixed(1)} min; load average now ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
process.exitCode = crashed ? 1 : 0;
