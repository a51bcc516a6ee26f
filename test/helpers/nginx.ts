// Debian's nginx for the proxy-offload suites, running the README's snippet for this test's service.
// Without nginx those suites are skipped with one line naming the package, or, under
// MEDIA_REPO_REQUIRE_NGINX=1 (CI), fail at once instead.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, NGINX_BINARY, startNginxWith, type Nginx } from '../../bench/media-processes.js';
import { offloadSnippet, type OffloadSite } from '../../bench/nginx-offload.js';
import { describeWithProgram, type DebianProgram } from './debian-programs.js';

const NGINX: DebianProgram = { binary: NGINX_BINARY, versionFlag: '-v', hint: 'apt-get install nginx-light', requireVariable: 'MEDIA_REPO_REQUIRE_NGINX' };

/** describe, when nginx is installed; else one skip line per file, or a failing test under MEDIA_REPO_REQUIRE_NGINX=1. */
export function describeWithNginx(name: string, fn: () => void): void {
  describeWithProgram(NGINX, name, fn);
}

/** nginx running the snippet in front of the service, on loopback with one worker. */
export async function startOffloadNginx(site: OffloadSite): Promise<Nginx> {
  const port = await freePort();
  return startNginxWith(mkdtempSync(join(tmpdir(), 'media-repo-nginx-')), offloadSnippet(site, port), `http://127.0.0.1:${port}`);
}
