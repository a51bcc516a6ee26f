/**
 * Architecture check: dependencies inside src/ point downwards only.
 *
 *   src/cli/, src/service.ts (any other src/*.ts)   top: may import anything
 *   src/metrics/                                top too: only the composition root wires it in; every
 *                                               layer below reaches metrics through injected callbacks
 *   src/http/                                   -> media and everything below it
 *   src/media/                                  -> federation, keys, storage, db, config, matrix
 *   src/federation/                             -> keys, storage, db, config, matrix
 *   src/keys/                                   -> storage, db, config, matrix (never federation)
 *   src/storage/, src/db/, src/config/          -> matrix
 *   src/matrix/                                 -> nothing of ours, no framework
 *
 * src/log.ts and src/lru-cache.ts are shared utilities: every layer may import them (matrix only
 * the pure lru-cache), and they import nothing of ours. Type-only imports count like any other.
 *
 * Run with `npm run check:deps`; test/architecture.test.ts proves that the rules fire.
 */

/** Shared utilities that every layer except matrix may import. */
const SHARED = '^src/(log|lru-cache)\\.ts$';

/** Packages that make a module framework code rather than protocol code. */
const FRAMEWORKS = [
  'express',
  'knex',
  'pg',
  'got',
  'pino',
  'sharp',
  'ajv',
  'yaml',
  'prom-client',
  '@electric-sql/pglite',
  '@electric-sql/pglite-socket',
];
const frameworkNames = FRAMEWORKS.map((name) => name.replace(/[.]/g, '\\.')).join('|');

/**
 * A layer rule: modules under src/<layer>/ may import, of our own code, only their own layer,
 * the listed lower layers and (unless told otherwise) the shared utilities.
 */
function layer(name, from, allowed, comment, { shared = SHARED } = {}) {
  const allowedPaths = [`^src/${from}/`, ...allowed.map((dir) => `^src/${dir}/`), shared];
  return {
    name,
    comment,
    severity: 'error',
    from: { path: `^src/${from}/` },
    to: { path: '^src/', pathNot: allowedPaths },
  };
}

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'A cycle makes its modules one inseparable unit and breaks the layering; cut it with an injected interface.',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    layer(
      'matrix-imports-nothing-of-ours',
      'matrix',
      [],
      'src/matrix is the pure Matrix protocol: everything builds on it, so it may not lean on any other module of ours but the pure LRU cache.',
      { shared: '^src/lru-cache\\.ts$' },
    ),
    {
      name: 'matrix-no-framework',
      comment: 'src/matrix must stay framework-free (node: built-ins and small pure libraries only) so it is usable and testable anywhere.',
      severity: 'error',
      from: { path: '^src/matrix/' },
      to: {
        path: [
          `(^|/)node_modules/(@types/)?(${frameworkNames})/`,
          `^(@types/)?(${frameworkNames})(/|$)`,
        ],
      },
    },
    {
      name: 'shared-utils-import-nothing-of-ours',
      comment: 'src/log.ts and src/lru-cache.ts are imported by every layer, so importing any of our modules would drag a layer into all the others.',
      severity: 'error',
      from: { path: SHARED },
      to: { path: '^src/' },
    },
    layer(
      'storage-imports-only-matrix',
      'storage',
      ['matrix'],
      'Blob storage is a foundation layer: it knows the protocol types and nothing about media flows, keys, the database or config.',
    ),
    layer(
      'db-imports-only-matrix',
      'db',
      ['matrix'],
      'The database layer is a foundation layer: it knows the protocol types and nothing about the services built on it.',
    ),
    layer(
      'config-imports-only-matrix',
      'config',
      ['matrix'],
      'Configuration is read by every layer, so it may only depend on the protocol types.',
    ),
    {
      name: 'keys-not-to-federation',
      comment: 'federation/client signs requests with keys/, so keys must not call back into federation: the keyring gets its federation fetchers injected.',
      severity: 'error',
      from: { path: '^src/keys/' },
      to: { path: '^src/federation/' },
    },
    layer(
      'keys-imports-only-lower-layers',
      'keys',
      // federation is left to keys-not-to-federation, so each bad import is reported once.
      ['federation', 'storage', 'db', 'config', 'matrix'],
      'Signing keys sit below media and http: they may use storage, db, config and matrix only.',
    ),
    layer(
      'federation-imports-only-lower-layers',
      'federation',
      ['keys', 'storage', 'db', 'config', 'matrix'],
      'Federation is a client library for media flows; it must not reach up into media, http or the service wiring.',
    ),
    layer(
      'media-imports-only-lower-layers',
      'media',
      ['federation', 'keys', 'storage', 'db', 'config', 'matrix'],
      'Media flows are services under the HTTP layer; they must not know about express routes or the service wiring.',
    ),
    layer(
      'http-imports-only-lower-layers',
      'http',
      ['media', 'federation', 'keys', 'storage', 'db', 'config', 'matrix'],
      'The HTTP layer gets its services handed in; only cli/ and the top-level wiring may sit above it.',
    ),
    {
      name: 'src-not-to-test-or-bench',
      comment: 'Production code must not depend on tests, fixtures or benchmarks: they are not shipped.',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|bench)/' },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'An import the checker cannot resolve is an import the layer rules cannot see; fix the import or the resolution options.',
      severity: 'error',
      from: { path: '^src/' },
      to: { couldNotResolve: true },
    },
  ],
  options: {
    // Type-only imports couple layers as much as value imports do, so they count too.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    // './x.js' in our ESM TypeScript resolves to './x.ts' by dependency-cruiser's own TypeScript
    // handling; these let it resolve packages through their "exports" as Node does.
    enhancedResolveOptions: {
      conditionNames: ['import', 'require', 'node', 'default'],
      exportsFields: ['exports'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
    doNotFollow: { path: 'node_modules' },
    skipAnalysisNotInRules: true,
  },
};
