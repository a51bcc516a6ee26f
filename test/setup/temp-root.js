// Every temporary file of a test run goes under one folder, removed when the run ends, so test runs
// leave nothing in the machine's temporary folder (child processes inherit TMPDIR too).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export function setup() {
  process.env.MEDIA_REPO_TEST_TMP_ROOT = mkdtempSync(join(tmpdir(), 'media-repo-tests-'));
  process.env.TMPDIR = process.env.MEDIA_REPO_TEST_TMP_ROOT;
}

export function teardown() {
  const root = process.env.MEDIA_REPO_TEST_TMP_ROOT;
  if (!root) return;
  rmSync(root, { recursive: true, force: true });
  // A process that runs Jest again (Stryker's test runner does, per mutant) must not make its next root inside this one.
  process.env.TMPDIR = dirname(root);
  delete process.env.MEDIA_REPO_TEST_TMP_ROOT;
}
