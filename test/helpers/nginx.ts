// Debian's nginx for the proxy-offload suites: the README's snippet (contrib/nginx-offload.conf) started
// with this test's ports, folder and secret. Without nginx those suites are skipped with one line naming
// the package, or, under MEDIA_REPO_REQUIRE_NGINX=1 (CI), fail at once instead.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { freePort, NGINX_BINARY, startNginxWith, type Nginx } from '../../bench/media-processes.js';

export const NGINX_HINT = 'apt-get install nginx-light';
export const OFFLOAD_SNIPPET = 'contrib/nginx-offload.conf';

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

export interface OffloadSite {
  /** The service's base URL. */
  upstream: string;
  /** The datastore "default"'s opts.path. */
  mediaPath: string;
  secret: string;
}

/** The snippet with the example's listen address, upstream, folder and secret replaced; each must be there. */
export function offloadSnippet(site: OffloadSite, port: number): string {
  let text = readFileSync(OFFLOAD_SNIPPET, 'utf8');
  const replace = (example: string, value: string) => {
    if (!text.includes(example)) throw new Error(`${OFFLOAD_SNIPPET} no longer contains ${example}`);
    text = text.replaceAll(example, value);
  };
  replace('listen 127.0.0.1:8080;', `listen 127.0.0.1:${port};`);
  replace('http://127.0.0.1:8000', site.upstream);
  replace('/var/lib/media-repo/media/', `${site.mediaPath}/`);
  replace('CHANGE-ME-secureLink-secret', site.secret);
  return text;
}

/** nginx running the snippet in front of the service, on loopback with one worker. */
export async function startOffloadNginx(site: OffloadSite): Promise<Nginx> {
  const port = await freePort();
  return startNginxWith(mkdtempSync(join(tmpdir(), 'media-repo-nginx-')), offloadSnippet(site, port), `http://127.0.0.1:${port}`);
}
