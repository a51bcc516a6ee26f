// Suites that run a proxy from Debian (nginx, lighttpd): where it is missing they are skipped with one
// line naming the package, or, under the program's MEDIA_REPO_REQUIRE_* variable (CI), fail at once instead.
import { spawnSync } from 'node:child_process';
import { relative } from 'node:path';

export interface DebianProgram {
  readonly binary: string;
  /** Its flag that prints the version and exits 0. */
  readonly versionFlag: string;
  /** How to install it. */
  readonly hint: string;
  /** Set to 1 (CI) to fail the suites instead of skipping them. */
  readonly requireVariable: string;
}

/** Why `program` cannot run here; undefined when it can. */
function programMissing(program: DebianProgram): string | undefined {
  const run = spawnSync(program.binary, [program.versionFlag], { encoding: 'utf8', timeout: 10_000 });
  if (run.error) return `${program.binary} cannot run (${(run.error as NodeJS.ErrnoException).code ?? run.error.message})`;
  return run.status === 0 ? undefined : `${program.binary} ${program.versionFlag} exited with ${run.status}`;
}

/** describe, when the program runs; else one skip line per file, or a failing test under its variable. */
export function describeWithProgram(program: DebianProgram, name: string, fn: () => void): void {
  const missing = programMissing(program);
  if (missing === undefined) return describe(name, fn);
  if (process.env[program.requireVariable] === '1') {
    describe(name, () => test(`needs ${program.binary} (${program.hint})`, () => {
      throw new Error(`${program.requireVariable}=1 and ${missing}: ${program.hint}`);
    }));
    return;
  }
  const file = relative(process.cwd(), expect.getState().testPath ?? 'this file');
  process.stderr.write(`SKIPPED ${program.binary} tests in ${file}: ${missing}; to run them: ${program.hint}\n`);
  describe.skip(name, fn);
}
