// One row of `npm run bench`'s table, and the shape every benchmark case module exports, so the runner can
// print one table of this service against its reference, with the target and whether it is met.

export interface BenchRow {
  case: string;
  /** The measured figure with its unit, e.g. "1,116 req/s". */
  ours: string;
  /** The reference and its figure, e.g. "bare node:http 10,502 req/s"; empty for absolute targets. */
  reference: string;
  /** ours / reference (or reference / ours for times), e.g. "0.11×"; empty for absolute targets. */
  ratio: string;
  /** e.g. "≥ 0.6×" or "< 10 s"; empty where the issue sets none (the figure is for comparison only). */
  target: string;
  /** Undefined where there is no target. */
  met: boolean | undefined;
  note?: string;
}

export interface BenchEnvironment {
  /** A PostgreSQL server to make scratch databases on; undefined means the embedded PGlite. */
  databaseUrl: string | undefined;
  /** The nginx binary when installed, for the references that need it. */
  nginx: string | undefined;
  /** A scratch directory the case owns for its files. */
  workDir: string;
}

/** A benchmark case module's export: it starts what it needs, measures, stops everything and returns rows. */
export interface BenchCase {
  title: string;
  run(env: BenchEnvironment): Promise<BenchRow[]>;
}

const figure = (value: number): string => value.toLocaleString('en-US', { maximumFractionDigits: value < 10 ? 2 : 0 });

/** A throughput row (higher is better): met when ours / reference ≥ minRatio; no target without one. */
export function throughputRow(name: string, unit: string, ours: number, referenceName: string, reference: number, minRatio: number | undefined, note?: string): BenchRow {
  const ratio = ours / reference;
  const target = minRatio === undefined ? { target: '', met: undefined } : { target: `≥ ${minRatio}×`, met: ratio >= minRatio };
  return { case: name, ours: `${figure(ours)} ${unit}`, reference: `${referenceName} ${figure(reference)} ${unit}`, ratio: `${ratio.toFixed(2)}×`, ...target, note };
}

/** A duration row (lower is better): met when ours / reference ≤ maxRatio. */
export function durationRow(name: string, ours: number, referenceName: string, reference: number, maxRatio: number, note?: string): BenchRow {
  const ratio = ours / reference;
  return { case: name, ours: `${figure(ours)} s`, reference: `${referenceName} ${figure(reference)} s`, ratio: `${ratio.toFixed(2)}×`, target: `≤ ${maxRatio}×`, met: ratio <= maxRatio, note };
}

/** An absolute limit (lower is better), e.g. seconds or MiB of RSS: met when ours < limit. */
export function limitRow(name: string, unit: string, ours: number, limit: number, note?: string): BenchRow {
  return { case: name, ours: `${figure(ours)} ${unit}`, reference: '', ratio: '', target: `< ${figure(limit)} ${unit}`, met: ours < limit, note };
}
