// Start-up with 10,000 hosted homeservers, each with its own signing key file: time from spawning the built
// service until /healthz answers 200, on an empty database (cold: every key inserted) and again on the same
// database (restart: every key unchanged), and the resident memory once it has settled; 1 homeserver is the reference.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { formatKeyFile, generateSigningKey } from '../../src/keys/key-files.js';
import { limitRow, type BenchCase, type BenchEnvironment, type BenchRow } from '../bench-row.js';
import { cpuSecondsOf, createScratchDatabase, memoryOf, startServiceProcess } from '../media-processes.js';

const MANY = 10_000;
/** What start-up leaves running (the first look at each homeserver's published keys) gets this long before RSS is read. */
const SETTLE_MS = 5_000;
const MIB = 1024 * 1024;
// Nothing listens there: no request in this case needs a homeserver's client API.
const UNUSED_CLIENT_API = 'http://127.0.0.1:9';

interface StartFigures {
  coldS: number;
  restartS: number;
  /** CPU seconds the service had used when /healthz first answered: cold, restart. */
  cpuS: [number, number];
  /** After the cold start and after the restart, each once settled. */
  rssMiB: [number, number];
}

/** `count` homeservers with one key file each; names under .invalid so that no lookup of them leaves the machine. */
function writeHomeservers(dir: string, count: number): string[] {
  mkdirSync(join(dir, 'keys'), { recursive: true });
  return Array.from({ length: count }, (_, i) => {
    const file = join(dir, 'keys', `hs${i}.key`);
    writeFileSync(file, formatKeyFile([generateSigningKey()], 'synapse'), { mode: 0o600 });
    return `  - {name: hs${i}.bench.invalid, clientApi: ${JSON.stringify(UNUSED_CLIENT_API)}, signingKeyPath: ${JSON.stringify(file)}}`;
  });
}

async function startOnce(dataDir: string, databaseUrl: string | undefined, homeservers: string[]): Promise<{ seconds: number; cpuS: number; rssMiB: number }> {
  const started = performance.now();
  const service = await startServiceProcess(dataDir, UNUSED_CLIENT_API, databaseUrl, false, [], { homeservers, upTimeoutMs: 180_000 });
  const seconds = (performance.now() - started) / 1000;
  try {
    const cpuS = cpuSecondsOf(service.child.pid!);
    await sleep(SETTLE_MS);
    return { seconds, cpuS, rssMiB: memoryOf(service.child.pid!, 'VmRSS') / MIB };
  } finally {
    await service.stop();
  }
}

async function measure(env: BenchEnvironment, count: number): Promise<StartFigures> {
  const dir = join(env.workDir, `homeservers-${count}`);
  const homeservers = writeHomeservers(dir, count);
  const database = env.databaseUrl === undefined ? undefined : await createScratchDatabase(env.databaseUrl);
  try {
    const cold = await startOnce(join(dir, 'service'), database?.url, homeservers);
    const restart = await startOnce(join(dir, 'service'), database?.url, homeservers);
    return { coldS: cold.seconds, restartS: restart.seconds, cpuS: [cold.cpuS, restart.cpuS], rssMiB: [cold.rssMiB, restart.rssMiB] };
  } finally {
    await database?.drop();
  }
}

/** The service's own CPU time until up, which a loaded machine inflates far less than the wall-clock time. */
function cpu(many: StartFigures, one: StartFigures, which: 0 | 1): string {
  return `CPU until up ${many.cpuS[which].toFixed(1)} s (1 homeserver ${one.cpuS[which].toFixed(1)} s)`;
}

function withReference(row: BenchRow, reference: string, ratio: number): BenchRow {
  return { ...row, reference, ratio: `${ratio.toFixed(1)}×` };
}

const manyHomeservers: BenchCase = {
  title: `Start-up with ${MANY.toLocaleString('en-US')} homeservers`,
  async run(env) {
    const one = await measure(env, 1);
    const many = await measure(env, MANY);
    const where = env.databaseUrl === undefined ? 'no PostgreSQL given: embedded PGlite (the targets are for PostgreSQL)' : 'PostgreSQL';
    const label = `${MANY.toLocaleString('en-US')} homeservers`;
    const rss = Math.max(...many.rssMiB);
    return [
      withReference(limitRow(`start ${label}, cold`, 's', many.coldS, 10, `${cpu(many, one, 0)}; ${where}`), `1 homeserver ${one.coldS.toFixed(2)} s`, many.coldS / one.coldS),
      withReference(limitRow(`start ${label}, restart`, 's', many.restartS, 3, `${cpu(many, one, 1)}; ${where}`), `1 homeserver ${one.restartS.toFixed(2)} s`, many.restartS / one.restartS),
      withReference(
        limitRow(`idle RSS, ${label}`, 'MiB', rss, 200, `${SETTLE_MS / 1000} s after start; cold ${many.rssMiB[0].toFixed(0)} MiB, restart ${many.rssMiB[1].toFixed(0)} MiB; ${where}`),
        `1 homeserver ${Math.max(...one.rssMiB).toFixed(0)} MiB`,
        rss / Math.max(...one.rssMiB),
      ),
    ];
  },
};

export default manyHomeservers;
