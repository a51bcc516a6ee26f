// The remote homeserver of the remote-fetch case, in its own process: the bench process spawns a hundred
// curls at once, and an origin sharing its event loop would stall behind those spawns and hold up the one
// upstream fetch it feeds the service. Serves the file it is given from memory: the federation download
// (multipart/mixed) for the service, the raw bytes at /direct for the reference, and at /requests/<media id>
// how many federation downloads of that media it has had. Prints its port on stdout, then serves until killed.
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { startChildServer, type ChildServer } from './child-server.js';

const MiB = 1024 * 1024;
const BOUNDARY = 'benchboundary';

export interface RemoteOrigin extends ChildServer {
  /** Federation downloads of `mediaId` the origin has answered. */
  requests(mediaId: string): Promise<number>;
}

/** Starts the origin serving the bytes of `file` as a child process. */
export async function startRemoteOrigin(file: string): Promise<RemoteOrigin> {
  const child = await startChildServer(fileURLToPath(import.meta.url), [file]);
  return {
    ...child,
    requests: async (mediaId) => Number(await (await fetch(`${child.url}/requests/${mediaId}`)).text()),
  };
}

function serve(file: string): void {
  const media = readFileSync(file);
  const requests = new Map<string, number>();
  const server = createServer((req, res) => {
    const federation = /^\/_matrix\/federation\/v1\/media\/download\/([^/?]+)/.exec(req.url!);
    const counted = /^\/requests\/([^/?]+)$/.exec(req.url!);
    if (federation) {
      requests.set(federation[1]!, (requests.get(federation[1]!) ?? 0) + 1);
      res.writeHead(200, { 'Content-Type': `multipart/mixed; boundary=${BOUNDARY}` });
      res.write(`--${BOUNDARY}\r\nContent-Type: application/json\r\n\r\n{}\r\n--${BOUNDARY}\r\nContent-Type: video/mp4\r\n\r\n`);
      void send(res, media, `\r\n--${BOUNDARY}--\r\n`);
    } else if (req.url === '/direct') {
      res.writeHead(200, { 'Content-Type': 'video/mp4', 'Content-Length': String(media.length) });
      void send(res, media, '');
    } else if (counted) {
      res.end(String(requests.get(counted[1]!) ?? 0));
    } else {
      res.writeHead(404).end();
    }
  });
  server.listen(0, '127.0.0.1', () => console.log((server.address() as AddressInfo).port));
}

/** The body in 1 MiB writes, honouring backpressure. */
async function send(res: ServerResponse, media: Buffer, trailer: string): Promise<void> {
  for (let offset = 0; offset < media.length; offset += MiB) {
    if (!res.write(media.subarray(offset, offset + MiB))) await once(res, 'drain');
  }
  res.end(trailer);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) serve(process.argv[2]!);
