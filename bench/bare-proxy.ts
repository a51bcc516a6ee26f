// A reference for remote fetches: the plainest node:http pass-through proxy, in its own process like the
// service. GET /<path> is fetched from the origin with http.get and piped to the client: no spool, no
// storage, no hashing, no single flight. Prints its port on stdout, then serves until killed.
import { createServer, get } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { startChildServer, type ChildServer } from './child-server.js';

export type BareProxy = ChildServer;

/** Starts the bare proxy in front of `origin` (an http:// URL) as a child process. */
export function startBareProxy(origin: string): Promise<BareProxy> {
  return startChildServer(fileURLToPath(import.meta.url), [origin]);
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
