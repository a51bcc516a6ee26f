// Every temporary file of a test run goes under one folder, removed when the run ends, so test runs
// leave nothing in the machine's temporary folder (child processes inherit TMPDIR too).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function setup() {
  process.env.MEDIA_REPO_TEST_TMP_ROOT = mkdtempSync(join(tmpdir(), 'media-repo-tests-'));
  process.env.TMPDIR = process.env.MEDIA_REPO_TEST_TMP_ROOT;
}

export function teardown() {
  const root = process.env.MEDIA_REPO_TEST_TMP_ROOT;
  if (root) rmSync(root, { recursive: true, force: true });
}
