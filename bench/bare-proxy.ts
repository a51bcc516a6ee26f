// A reference for remote fetches: the plainest node:http pass-through proxy, in its own process like the
// service. GET /<path> is fetched from the origin with http.get and piped to the client: no spool, no
// storage, no hashing, no single flight. Prints its port on stdout, then serves until killed.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, get } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

export interface BareProxy {
  url: string;
  stop(): Promise<void>;
}

/** Starts the bare proxy in front of `origin` (an http:// URL) as a child process. */
export async function startBareProxy(origin: string): Promise<BareProxy> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), origin], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = (await once(child.stdout, 'data')) as [Buffer];
  return {
    url: `http://127.0.0.1:${line.toString().trim()}`,
    stop: async () => {
      child.kill('SIGTERM');
      if (child.exitCode === null) await once(child, 'exit');
    },
  };
}

function serve(origin: string): void {
  const server = createServer((req, res) => {
    get(`${origin}${req.url}`, (upstream) => {
      res.writeHead(upstream.statusCode!, upstream.headers);
      upstream.pipe(res);
    }).on('error', () => res.destroy());
  });
  server.listen(0, '127.0.0.1', () => console.log((server.address() as AddressInfo).port));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) serve(process.argv[2]!);
