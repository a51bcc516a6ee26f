// Interop suites need Debian's /usr/bin/python3 with Synapse's own libraries. Checked once per test file:
// without them those suites are skipped with one line saying what to install, or, under
// MEDIA_REPO_REQUIRE_PYTHON=1 (CI), fail at once instead.
import { spawnSync } from 'node:child_process';
import { relative } from 'node:path';
import { SYSTEM_PYTHON } from './python-worker.js';

export const INSTALL_HINT = 'apt-get install python3-signedjson python3-nacl python3-canonicaljson';

function probe(): string | undefined {
  const run = spawnSync(SYSTEM_PYTHON, ['-c', 'import signedjson.key, signedjson.sign, nacl.signing, canonicaljson, unpaddedbase64'], { encoding: 'utf8', timeout: 10_000 });
  if (run.error) return `${SYSTEM_PYTHON} cannot run (${(run.error as NodeJS.ErrnoException).code ?? run.error.message})`;
  if (run.status !== 0) return run.stderr.trim().split('\n').pop() ?? `${SYSTEM_PYTHON} exited with ${run.status}`;
  return undefined;
}

/** Why Synapse's libraries cannot be used here; undefined when they can. */
export const pythonMissing = probe();
const required = process.env.MEDIA_REPO_REQUIRE_PYTHON === '1';
let announced = false;

function announce(): void {
  if (announced) return;
  announced = true;
  const file = relative(process.cwd(), expect.getState().testPath ?? 'this file');
  process.stderr.write(`SKIPPED python interop tests in ${file}: ${pythonMissing}; to run them: ${INSTALL_HINT}\n`);
}

/** describe, when Synapse's Python libraries are there; else skipped with one line per file, or failing under MEDIA_REPO_REQUIRE_PYTHON=1. */
export function describeWithPython(name: string, fn: () => void): void {
  if (pythonMissing === undefined) return describe(name, fn);
  if (required) {
    describe(name, () => test(`needs Synapse's Python libraries (${INSTALL_HINT})`, () => {
      throw new Error(`MEDIA_REPO_REQUIRE_PYTHON=1 and ${pythonMissing}: ${INSTALL_HINT}`);
    }));
    return;
  }
  announce();
  // Each test is registered skipped itself: jest runs a file's top-level hooks (which may need Python)
  // while any test counts as enabled, and tests inside describe.skip still do.
  const jestGlobals = globalThis as unknown as { test: jest.It; it: jest.It };
  const { test: saved, it: savedIt } = jestGlobals;
  jestGlobals.test = saved.skip;
  jestGlobals.it = savedIt.skip;
  try {
    describe.skip(name, fn);
  } finally {
    jestGlobals.test = saved;
    jestGlobals.it = savedIt;
  }
}

/** test, under the same rule as describeWithPython, for the interop tests of a file that has others too. */
export function testWithPython(name: string, fn: () => Promise<unknown>, timeout?: number): void {
  if (pythonMissing === undefined) return test(name, fn, timeout);
  if (required) {
    test(name, () => {
      throw new Error(`MEDIA_REPO_REQUIRE_PYTHON=1 and ${pythonMissing}: ${INSTALL_HINT}`);
    });
    return;
  }
  announce();
  test.skip(name, fn);
}
