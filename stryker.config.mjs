// Mutation testing, one area at a time so each run stays bounded on a small machine:
//   STRYKER_AREA=matrix npm run test:mutation   (areas: matrix, federation, keys, media)
const areas = {
  matrix: { mutate: ['src/matrix/**/*.ts'], tests: ['<rootDir>/test/matrix'] },
  federation: { mutate: ['src/federation/**/*.ts'], tests: ['<rootDir>/test/federation'] },
  keys: { mutate: ['src/keys/**/*.ts'], tests: ['<rootDir>/test/keys'] },
  media: {
    mutate: ['src/media/uploads.ts', 'src/media/remote-*.ts'],
    tests: ['<rootDir>/test/media/remote', '<rootDir>/test/http/media-client', '<rootDir>/test/federation/outbound-media'],
    // Its tests reach these modules through the running service, a chain jest's --findRelatedTests (which
    // sees only the test folder and the mutated file's own) does not follow: it would run almost none of them.
    findRelatedTests: false,
  },
};
const name = process.env.STRYKER_AREA ?? 'matrix';
const area = areas[name];
if (!area) throw new Error(`STRYKER_AREA must be one of ${Object.keys(areas).join(', ')}`);
// Narrower runs inside an area: comma-separated source globs to mutate and test path prefixes to run.
const mutate = process.env.STRYKER_MUTATE ? process.env.STRYKER_MUTATE.split(',') : area.mutate;
const tests = process.env.STRYKER_TESTS ? process.env.STRYKER_TESTS.split(',').map((t) => `<rootDir>/${t}`) : area.tests;

export default {
  packageManager: 'npm',
  testRunner: 'jest',
  testRunnerNodeArgs: ['--experimental-vm-modules'],
  jest: {
    projectType: 'custom',
    configFile: 'jest.config.js',
    config: { testMatch: tests.flatMap((t) => [`${t}*/**/*.test.ts`, `${t}*.test.ts`]) },
    // STRYKER_RELATED=0 when jest cannot trace a test to the mutated file (the dry run then finds no tests).
    enableFindRelatedTests: process.env.STRYKER_RELATED === undefined ? area.findRelatedTests ?? true : process.env.STRYKER_RELATED !== '0',
  },
  // STRYKER_COVERAGE=all for tests that do their work in beforeAll (perTest would count it as static).
  coverageAnalysis: process.env.STRYKER_COVERAGE === 'all' ? 'all' : 'perTest',
  // Static mutants (module-level constants) rerun every test per mutant: too slow here; see README.
  ignoreStatic: process.env.STRYKER_COVERAGE !== 'all',
  mutate,
  concurrency: Number(process.env.STRYKER_CONCURRENCY ?? 1),
  timeoutMS: 30000,
  incremental: true,
  incrementalFile: `mutation/incremental-${name}.json`,
  reporters: ['clear-text', 'progress', 'json'],
  jsonReporter: { fileName: `reports/mutation/${name}.json` },
  tempDirName: `.stryker-tmp-${name}-${process.pid}`,
  ignorePatterns: ['dist', 'data', 'coverage', 'reports', '.stryker-tmp*'],
  thresholds: { high: 95, low: 85, break: null },
};
