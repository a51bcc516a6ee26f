// The reference the service's downloads are measured against: the plainest node:http file server, in its
// own process like the service. GET /<name> streams files/<name> with createReadStream's default 64 KiB
// reads; GET /1m/<name> with 1 MiB reads. PUT /upload/<name> pipes the body into upload/<name> and
// fdatasyncs it before answering, as the service does. Prints its port on stdout, then serves until killed.
import { createReadStream, createWriteStream, mkdirSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startChildServer, type ChildServer } from './child-server.js';

export type BareFileServer = ChildServer;

/** Starts the bare server over the files in `dir` as a child process. */
export function startBareFileServer(dir: string): Promise<BareFileServer> {
  return startChildServer(fileURLToPath(import.meta.url), [dir]);
}

function serve(dir: string): void {
  const sizes = new Map<string, number>(); // stat once, so the reference does no more than open and read
  mkdirSync(join(dir, 'upload'), { recursive: true });
  const server = createServer((req, res) => {
    if (req.method === 'PUT') {
      const file = join(dir, 'upload', basename(req.url!));
      req.pipe(createWriteStream(file)).on('close', () => void durable(file).then(() => res.writeHead(201).end()));
      return;
    }
    const large = req.url!.startsWith('/1m/');
    const file = join(dir, basename(req.url!));
    if (!sizes.has(file)) sizes.set(file, statSync(file).size);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': sizes.get(file) });
    (large ? createReadStream(file, { highWaterMark: 1 << 20 }) : createReadStream(file)).pipe(res);
  });
  server.listen(0, '127.0.0.1', () => console.log((server.address() as AddressInfo).port));
}

async function durable(file: string): Promise<void> {
  const handle = await open(file, 'r+');
  await handle.datasync();
  await handle.close();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) serve(process.argv[2]!);
