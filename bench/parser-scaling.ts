// How each parser's time grows with its input: the same hostile shape at size n and 10n, best of several
// runs each; a linear parser shows a ratio near 10, a quadratic one near 100. Not a test: timings on a
// shared machine vary, so read the ratios, not the absolute times.
// Run: npx tsc -p tsconfig.json && node dist/bench/parser-scaling.js
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigFile } from '../src/config/config.js';
import { encodeCanonicalJson } from '../src/matrix/canonical-json.js';
import { readMultipartMixed } from '../src/matrix/multipart-reader.js';
import { parseMxc } from '../src/matrix/mxc.js';
import { parseServerName } from '../src/matrix/server-name.js';
import { parseAuthorization } from '../src/matrix/x-matrix.js';

const REPEATS = 5;
const BOUNDARY = 'gc0p4Jq0M2Yt08jU534c0p';

interface Case<T = unknown> {
  name: string;
  /** Input sizes n and 10n, in the unit the input is measured in. */
  n: number;
  /** Built before the clock starts: only the parse is timed. */
  input: (size: number) => T;
  run: (input: T) => unknown;
  /** Runs per timing, for parsers too quick to time once. */
  loops?: number;
}

const parserCase = <T>(c: Case<T>): Case => c as Case;

const swallow = (fn: () => unknown) => () => {
  try {
    return fn();
  } catch {
    return undefined;
  }
};

/** A media part made of near-delimiters: every line break followed by most of the boundary. */
function nearDelimiters(size: number): Buffer {
  const piece = `\r\n--${BOUNDARY.slice(0, -1)}x`;
  return Buffer.from(piece.repeat(Math.ceil(size / piece.length)).slice(0, size), 'latin1');
}

async function* chunks(bytes: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

async function readMultipart(media: Buffer, chunkSize: number): Promise<void> {
  const body = Buffer.concat([Buffer.from(`--${BOUNDARY}\r\nContent-Type: application/json\r\n\r\n{}\r\n--${BOUNDARY}\r\n\r\n`), media, Buffer.from(`\r\n--${BOUNDARY}--\r\n`)]);
  const parsed = await readMultipartMixed(chunks(body, chunkSize), `multipart/mixed; boundary=${BOUNDARY}`, { maxPreambleBytes: 1 << 30 });
  for await (const _chunk of parsed.body) void _chunk;
}

const dir = mkdtempSync(join(tmpdir(), 'parser-scaling-'));

const xMatrix = (values: string[]) => swallow(() => parseAuthorization(values))();

const CASES: Case[] = [
  parserCase({ name: 'X-Matrix: one long quoted value of escapes', n: 20_000, input: (size) => [`X-Matrix origin="a.test",key="ed25519:a",sig="c2ln",other="${'\\"'.repeat(size / 2)}"`], run: xMatrix }),
  parserCase({ name: 'X-Matrix: many parameters', n: 2_000, input: (size) => [`X-Matrix ${Array.from({ length: size }, (_, i) => `p${i}="v"`).join(',')},origin="a.test",key="ed25519:a",sig="c2ln"`], run: xMatrix }),
  parserCase({ name: 'X-Matrix: many headers', n: 1_000, input: (size) => Array.from({ length: size }, (_, i) => `X-Matrix origin="a.test",key="ed25519:k${i}",sig="c2ln"`), run: xMatrix }),
  // Names past 255 characters are refused by length at once: these sizes stay under the cap.
  parserCase({ name: 'server name: many labels', n: 24, input: (size) => `${'a.'.repeat(size / 2)}test`, run: parseServerName, loops: 20_000 }),
  parserCase({ name: 'server name: IPv6-looking text', n: 4, input: (size) => `[${'1:'.repeat(size / 2)}]`, run: parseServerName, loops: 20_000 }),
  parserCase({ name: 'mxc: long media ID', n: 24, input: (size) => `mxc://a.example/${'b'.repeat(size)}`, run: parseMxc, loops: 20_000 }),
  parserCase({ name: 'canonical JSON: many keys', n: 10_000, input: (size) => Object.fromEntries(Array.from({ length: size }, (_, i) => [`k${(i * 7919) % size}`, i])), run: encodeCanonicalJson }),
  parserCase({ name: 'canonical JSON: deep nesting (to the depth limit)', n: 40, input: (size) => Array.from({ length: size }).reduce<unknown>((inner) => ({ a: inner }), 1), run: encodeCanonicalJson }),
  parserCase({ name: 'canonical JSON: long string of escapes', n: 200_000, input: (size) => ({ s: '\u0001"\\'.repeat(size / 3) }), run: encodeCanonicalJson }),
  parserCase({ name: 'multipart: near-delimiter media in 1 KiB chunks', n: 1 << 20, input: nearDelimiters, run: (media) => readMultipart(media, 1024) }),
  parserCase({ name: 'multipart: near-delimiter media in 7-byte chunks', n: 64 * 1024, input: nearDelimiters, run: (media) => readMultipart(media, 7) }),
  parserCase({ name: 'config: many homeservers', n: 200, input: (size) => {
    const configFile = join(dir, `config-${size}.yaml`);
    writeFileSync(configFile, `dataDir: ${dir}\nmasterKey: ${'ab'.repeat(32)}\nhomeservers:\n${Array.from({ length: size }, (_, i) => `  - name: hs${i}.example\n    clientApi: http://127.0.0.1:1\n    hostnames: [h${i}.example]\n`).join('')}`);
    return configFile;
  }, run: loadConfigFile }),
];

/** `c.loops` runs, awaiting only the parsers that are asynchronous (an await per call would dominate). */
async function runLoops(c: Case, input: unknown): Promise<void> {
  for (let i = 0; i < (c.loops ?? 1); i++) {
    const result = c.run(input);
    if (result instanceof Promise) await result;
  }
}

async function timeOf(run: () => unknown): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < REPEATS; i++) {
    const start = process.hrtime.bigint();
    await run();
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e6);
  }
  return best;
}

async function main(): Promise<void> {
  console.log('parser'.padEnd(52), 'n'.padStart(9), 'ms at n'.padStart(10), 'ms at 10n'.padStart(10), 'ratio'.padStart(7));
  let worst = 0;
  for (const c of CASES) {
    const [smallInput, largeInput] = [c.input(c.n), c.input(c.n * 10)];
    await timeOf(() => c.run(smallInput)); // warm-up: JIT and caches
    const small = await timeOf(() => runLoops(c, smallInput));
    const large = await timeOf(() => runLoops(c, largeInput));
    const ratio = large / small;
    worst = Math.max(worst, ratio);
    console.log(c.name.padEnd(52), String(c.n).padStart(9), small.toFixed(2).padStart(10), large.toFixed(2).padStart(10), ratio.toFixed(1).padStart(7));
  }
  console.log(`worst ratio ${worst.toFixed(1)} (linear ≈ 10, quadratic ≈ 100)`);
}

await main();
