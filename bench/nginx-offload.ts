// The README's proxy-offload snippet (contrib/nginx-offload.conf) filled in for a run here: its example
// listen address, upstream, folder and secret replaced, for the tests and the benchmark alike.
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
  let text = readFileSync(OFFLOAD_SNIPPET, 'utf8');
  const replace = (example: string, value: string) => {
    if (!text.includes(example)) throw new Error(`${OFFLOAD_SNIPPET} no longer contains ${example}`);
    text = text.replaceAll(example, value);
  };
  replace('listen 127.0.0.1:8080;', `listen 127.0.0.1:${port};`);
  replace('server 127.0.0.1:8000;', `server ${new URL(site.upstream).host};`);
  replace('/var/lib/media-repo/media/', `${site.mediaPath}/`);
  replace('CHANGE-ME-secureLink-secret', site.secret);
  return text;
}
