// Debian's nginx for the proxy-offload suites, running the README's snippet for this test's service.
// Without nginx those suites are skipped with one line naming the package, or, under
// MEDIA_REPO_REQUIRE_NGINX=1 (CI), fail at once instead.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { freePort, NGINX_BINARY, startNginxWith, type Nginx } from '../../bench/media-processes.js';
import { offloadSnippet, type OffloadSite } from '../../bench/nginx-offload.js';

export const NGINX_HINT = 'apt-get install nginx-light';

function probe(): string | undefined {
  const run = spawnSync(NGINX_BINARY, ['-v'], { encoding: 'utf8', timeout: 10_000 });
  if (run.error) return `${NGINX_BINARY} cannot run (${(run.error as NodeJS.ErrnoException).code ?? run.error.message})`;
  return run.status === 0 ? undefined : `${NGINX_BINARY} -v exited with ${run.status}`;
}

/** Why nginx cannot be used here; undefined when it can. */
export const nginxMissing = probe();

/** describe, when nginx is installed; else one skip line per file, or a failing test under MEDIA_REPO_REQUIRE_NGINX=1. */
export function describeWithNginx(name: string, fn: () => void): void {
  if (nginxMissing === undefined) return describe(name, fn);
  if (process.env.MEDIA_REPO_REQUIRE_NGINX === '1') {
    describe(name, () => test(`needs nginx (${NGINX_HINT})`, () => {
      throw new Error(`MEDIA_REPO_REQUIRE_NGINX=1 and ${nginxMissing}: ${NGINX_HINT}`);
    }));
    return;
  }
  const file = relative(process.cwd(), expect.getState().testPath ?? 'this file');
  process.stderr.write(`SKIPPED nginx tests in ${file}: ${nginxMissing}; to run them: ${NGINX_HINT}\n`);
  describe.skip(name, fn);
}

/** nginx running the snippet in front of the service, on loopback with one worker. */
export async function startOffloadNginx(site: OffloadSite): Promise<Nginx> {
  const port = await freePort();
  return startNginxWith(mkdtempSync(join(tmpdir(), 'media-repo-nginx-')), offloadSnippet(site, port), `http://127.0.0.1:${port}`);
}
