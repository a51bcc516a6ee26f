// The README's proxy-offload snippet (contrib/nginx-offload.conf) filled in for a run here: its example
// listen address, upstream, folder and secret replaced, for the tests and the benchmark alike (the
// lighttpd snippet is filled in the same way).
import { readFileSync } from 'node:fs';

export const OFFLOAD_SNIPPET = 'contrib/nginx-offload.conf';

export interface OffloadSite {
  /** The service's base URL. */
  upstream: string;
  /** The datastore "default"'s opts.path. */
  mediaPath: string;
  secret: string;
}

/** The snippet for `site`, listening on 127.0.0.1:`port`; each example value must still be in it. */
export function offloadSnippet(site: OffloadSite, port: number): string {
  return filledExample(OFFLOAD_SNIPPET, [
    ['listen 127.0.0.1:8080;', `listen 127.0.0.1:${port};`],
    ['server 127.0.0.1:8000;', `server ${new URL(site.upstream).host};`],
    ['/var/lib/media-repo/media/', `${site.mediaPath}/`],
    ['CHANGE-ME-secureLink-secret', site.secret],
  ]);
}

/** The example file at `path` with each example value replaced; one no longer there is an error, not a silent miss. */
export function filledExample(path: string, replacements: Array<[example: string, value: string]>): string {
  let text = readFileSync(path, 'utf8');
  for (const [example, value] of replacements) {
    if (!text.includes(example)) throw new Error(`${path} no longer contains ${example}`);
    text = text.replaceAll(example, value);
  }
  return text;
}
