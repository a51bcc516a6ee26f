// Debian's lighttpd for the X-Sendfile offload suite, running contrib/lighttpd-offload.conf for this test's
// service. Without lighttpd that suite is skipped with one line naming the package, or, under
// MEDIA_REPO_REQUIRE_LIGHTTPD=1 (CI), fails at once instead.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startProgram, type RunningProgram } from '../../bench/media-processes.js';
import { filledExample } from '../../bench/nginx-offload.js';
import { describeWithProgram, type DebianProgram } from './debian-programs.js';

const LIGHTTPD_SNIPPET = 'contrib/lighttpd-offload.conf';
const LIGHTTPD: DebianProgram = { binary: '/usr/sbin/lighttpd', versionFlag: '-v', hint: 'apt-get install lighttpd', requireVariable: 'MEDIA_REPO_REQUIRE_LIGHTTPD' };

export function describeWithLighttpd(name: string, fn: () => void): void {
  describeWithProgram(LIGHTTPD, name, fn);
}

/** lighttpd running the snippet in front of the service at `upstream`, sending files from `mediaPath`. */
export async function startOffloadLighttpd(site: { upstream: string; mediaPath: string }): Promise<RunningProgram> {
  const dir = mkdtempSync(join(tmpdir(), 'media-repo-lighttpd-'));
  mkdirSync(join(dir, 'empty'));
  const upstream = new URL(site.upstream);
  const snippet = filledExample(LIGHTTPD_SNIPPET, [
    ['"host" => "127.0.0.1",', `"host" => "${upstream.hostname}",`],
    ['"port" => 8000,', `"port" => ${upstream.port},`],
    ['"/var/lib/media-repo/media"', JSON.stringify(site.mediaPath)],
  ]);
  const port = await freePort();
  // What a lighttpd.conf has before the snippet is merged in: where it listens and its own document root.
  writeFileSync(join(dir, 'lighttpd.conf'), [
    'server.bind = "127.0.0.1"',
    `server.port = ${port}`,
    `server.document-root = ${JSON.stringify(join(dir, 'empty'))}`,
    `server.errorlog = ${JSON.stringify(join(dir, 'error.log'))}`,
    'server.modules = ()',
    snippet,
  ].join('\n'));
  return startProgram(LIGHTTPD.binary, ['-D', '-f', join(dir, 'lighttpd.conf')], `http://127.0.0.1:${port}`, 'SIGTERM');
}
