import { join } from 'node:path';

/**
 * Where this run's PGlite template goes: a freshly initialised data directory, dumped once per run by the
 * first test that opens a database (test/helpers/database.ts), since initdb takes seconds.
 */
export function choosePgliteTemplatePath(root) {
  if (!process.env.MEDIA_REPO_TEST_DATABASE_URL) process.env.MEDIA_REPO_TEST_PGLITE_TEMPLATE = join(root, 'pglite-template.tar');
}
