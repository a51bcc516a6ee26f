/**
 * The layer rules in .dependency-cruiser.cjs bite: wrong-way imports planted in a copy of src/
 * are reported under the rule meant for them, and the `check:deps` command fails on them.
 *
 * The real src/ is checked by `npm run check:deps` (run before the tests), not here: this test
 * only looks at the planted modules, so it holds while src/ is being refactored towards the rules.
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const depcruise = join(root, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');

interface Violation {
  rule: { name: string; severity: string };
  from: string;
  to: string;
  cycle?: { name: string }[];
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Modules written into the copy: path -> source. Everything named zz-planted is ours. */
const PLANTED: Record<string, string> = {
  // Legal targets, one per layer that a wrong-way import below points at.
  'src/http/zz-planted-target.ts': 'export const plantedHttp = 1;\n',
  'src/media/zz-planted-target.ts': 'export const plantedMedia = 1;\n',
  'src/federation/zz-planted-target.ts': 'export interface PlantedFetcher { fetch(): void }\n',
  'src/matrix/zz-planted-target.ts': 'export const plantedMatrix = 1;\n',
  // Wrong way: protocol code importing the HTTP layer and a framework.
  'src/matrix/zz-planted-wrong-way.ts':
    "import express from 'express';\nimport { plantedHttp } from '../http/zz-planted-target.js';\n" +
    'export const wrong = [express, plantedHttp];\n',
  // Wrong way: a foundation layer importing a media flow.
  'src/storage/zz-planted-wrong-way.ts':
    "import { plantedMedia } from '../media/zz-planted-target.js';\nexport const wrong = plantedMedia;\n",
  // Wrong way, and type-only: keys must get federation injected, not import it.
  'src/keys/zz-planted-wrong-way.ts':
    "import type { PlantedFetcher } from '../federation/zz-planted-target.js';\n" +
    'export type Wrong = PlantedFetcher;\n',
  // Production code importing a test helper.
  'src/cli/zz-planted-wrong-way.ts': "import { helper } from '../../test/zz-planted-helper.js';\nexport const wrong = helper;\n",
  'test/zz-planted-helper.ts': 'export const helper = 1;\n',
  // A cycle inside one layer: legal by layer, still forbidden.
  'src/db/zz-planted-cycle-a.ts': "import { b } from './zz-planted-cycle-b.js';\nexport const a = () => b;\n",
  'src/db/zz-planted-cycle-b.ts': "import { a } from './zz-planted-cycle-a.js';\nexport const b = () => a;\n",
  // An import nobody can resolve: the layer rules could not see where it goes.
  'src/config/zz-planted-unresolvable.ts': "import { nothing } from './zz-planted-missing.js';\nexport const wrong = nothing;\n",
  // The right way: http may import media, federation, matrix and the shared utilities.
  'src/http/zz-planted-allowed.ts':
    "import { plantedMedia } from '../media/zz-planted-target.js';\nimport type { PlantedFetcher } from '../federation/zz-planted-target.js';\n" +
    "import { plantedMatrix } from '../matrix/zz-planted-target.js';\nimport { LruCache } from '../lru-cache.js';\nimport { createLogger } from '../log.js';\n" +
    'export const allowed = [plantedMedia, plantedMatrix, LruCache, createLogger];\nexport type Allowed = PlantedFetcher;\n',
};

/** A shared utility may not import our modules: planted by appending to a copy of log.ts. */
const SHARED_UTILITY_PLANT = "\nimport './matrix/zz-planted-target.js';\n";

let work: string;

function run(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [depcruise, ...args], { cwd: work, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number') reject(error);
      else resolve({ code: error ? (error.code as number) : 0, stdout, stderr });
    });
  });
}

/** The `check:deps` command line from package.json, without the leading `depcruise`. */
function checkDepsArgs(): string[] {
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const [command, ...args] = manifest.scripts['check:deps']!.split(/\s+/);
  expect(command).toBe('depcruise');
  return args;
}

let checkRun: Run;
let violations: Violation[];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'architecture-'));
  for (const entry of ['src', 'migrations']) cpSync(join(root, entry), join(work, entry), { recursive: true });
  for (const file of ['package.json', 'tsconfig.json', '.dependency-cruiser.cjs']) cpSync(join(root, file), join(work, file));
  symlinkSync(join(root, 'node_modules'), join(work, 'node_modules'), 'dir');
  for (const [path, source] of Object.entries(PLANTED)) {
    mkdirSync(dirname(join(work, path)), { recursive: true });
    writeFileSync(join(work, path), source);
  }
  appendFileSync(join(work, 'src', 'log.ts'), SHARED_UTILITY_PLANT);

  const args = checkDepsArgs();
  // The command exactly as CI runs it (for its exit code), and again as JSON (for the details).
  const [check, json] = await Promise.all([run(args), run([...args, '--output-type', 'json'])]);
  checkRun = check;
  expect(json.stderr).toBe('');
  violations = (JSON.parse(json.stdout) as { summary: { violations: Violation[] } }).summary.violations;
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Planted violations as "rule: from -> to", so that today's real violations in src/ do not count. */
function planted(): string[] {
  return violations
    .filter((v) => v.from.includes('zz-planted') || v.to.includes('zz-planted'))
    .map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`)
    .sort();
}

describe('architecture rules (.dependency-cruiser.cjs)', () => {
  test('every planted wrong-way import is reported under its own rule, and nothing else about them', () => {
    expect(planted()).toEqual(
      [
        'matrix-imports-nothing-of-ours: src/matrix/zz-planted-wrong-way.ts -> src/http/zz-planted-target.ts',
        'storage-imports-only-matrix: src/storage/zz-planted-wrong-way.ts -> src/media/zz-planted-target.ts',
        'keys-not-to-federation: src/keys/zz-planted-wrong-way.ts -> src/federation/zz-planted-target.ts',
        'src-not-to-test-or-bench: src/cli/zz-planted-wrong-way.ts -> test/zz-planted-helper.ts',
        'shared-utils-import-nothing-of-ours: src/log.ts -> src/matrix/zz-planted-target.ts',
        'not-to-unresolvable: src/config/zz-planted-unresolvable.ts -> ./zz-planted-missing.js',
        // A cycle is reported once, from whichever member the cruise met first.
        ...planted().filter((line) => line.startsWith('no-circular: ')),
      ]
        .concat(frameworkViolations())
        .sort(),
    );
  });

  test('a cycle is reported once, through both of its modules', () => {
    const cycles = violations.filter((v) => v.rule.name === 'no-circular' && v.from.includes('zz-planted'));
    expect(cycles).toHaveLength(1);
    expect([cycles[0]!.from, cycles[0]!.to].sort()).toEqual(['src/db/zz-planted-cycle-a.ts', 'src/db/zz-planted-cycle-b.ts']);
  });

  test('protocol code may not import a framework', () => {
    expect(frameworkViolations()).toHaveLength(1);
  });

  test('the check:deps command fails and names the rules', () => {
    expect(checkRun.code).not.toBe(0);
    for (const rule of [
      'matrix-imports-nothing-of-ours',
      'matrix-no-framework',
      'storage-imports-only-matrix',
      'keys-not-to-federation',
      'src-not-to-test-or-bench',
      'shared-utils-import-nothing-of-ours',
      'not-to-unresolvable',
      'no-circular',
    ]) {
      expect(checkRun.stdout).toContain(`error ${rule}: `);
    }
  });
});

/** express resolves into node_modules wherever it is installed; match the rule, not the path. */
function frameworkViolations(): string[] {
  return violations
    .filter((v) => v.rule.name === 'matrix-no-framework' && v.from === 'src/matrix/zz-planted-wrong-way.ts')
    .filter((v) => /(^|\/)node_modules\/express\//.test(v.to))
    .map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`);
}
