// A remote homeserver on 127.0.0.1 for outbound-federation tests. It checks every federation request's
// Authorization header with Synapse's own libraries (Debian's python3-signedjson, in the shared Python
// worker, parsing the header the way Synapse's _parse_auth_header does) and serves media in the variants
// peers produce or that go wrong: multipart (several wire styles), Location parts, legacy-only servers,
// slow, stalled, truncated and oversized bodies, and Matrix errors.
import { once } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Certificate } from './keys.js';
import { patternBytes } from './media-fixtures.js';
import { PythonWorker, type TrustedKeys, type Verdict } from './python-worker.js';
import { slices, writeChunks } from './raw-http.js';

export type MultipartStyle =
  | 'strict' // CRLF everywhere, "--boundary--" at the end
  | 'lf' // bare LF line ends
  | 'msc-example' // blank line after the JSON, no closing "--" (MSC3916's examples)
  | 'preamble' // a leading CRLF and a preamble before the first boundary
  | 'quoted-boundary' // boundary="..." with characters that need the quotes
  | 'header-case'; // upper-case part header names

export type MediaBehaviour =
  | {
      kind: 'multipart';
      bytes: Buffer;
      contentType?: string;
      disposition?: string;
      style?: MultipartStyle;
      /** Waits for this before answering (lets a test pile up concurrent requests). */
      gate?: Promise<void>;
      /** Sends the body in chunks of this size, waiting for the socket between them. */
      chunkSize?: number;
      thumbnail?: { bytes: Buffer; contentType: string; disposition?: string };
    }
  | { kind: 'location'; location: string }
  | { kind: 'legacy-only'; bytes: Buffer; contentType?: string; disposition?: string; unrecognized?: 'json' | 'html' | '405'; redirectTo?: string }
  | { kind: 'slow'; delayMs: number; bytes: Buffer }
  | { kind: 'stall'; bytes: Buffer }
  | { kind: 'truncated'; bytes: Buffer }
  /** With declareLength, the body is declared in full but not one media byte is sent. */
  | { kind: 'oversized'; size: number; declareLength: boolean }
  /** A media part that declares its Content-Length, then sends no byte of it and holds the connection. */
  | { kind: 'declared-part'; declaredLength: number }
  | { kind: 'error'; status: number; body: unknown };

export interface PlainFile {
  status?: number;
  headers?: Record<string, string>;
  body?: Buffer;
}

export interface RecordedRequest {
  method: string;
  path: string;
  host: string | undefined;
  authorization: string[];
  verdict?: Verdict & { scheme: string };
}

export interface RemoteHomeserverOptions {
  /** The destination our requests must name. */
  serverName: string;
  trustedKeys: TrustedKeys;
  /** False: a server that knows only X-Matrix, answering X-MSC4100-Scoped alone with 401 (as Synapse does). */
  acceptScoped?: boolean;
  tls?: Certificate;
}

export interface RemoteHomeserver {
  readonly url: string;
  readonly port: number;
  readonly media: Map<string, MediaBehaviour>;
  /** Served as is at their path: Location targets, CDN, redirect chains. */
  readonly files: Map<string, PlainFile>;
  readonly requests: RecordedRequest[];
  /** TCP connections accepted so far. */
  connections: number;
  requestsFor(prefix: string): RecordedRequest[];
  close(): Promise<void>;
}

const BOUNDARY = 'gc0p4Jq0M2Yt08jU534c0p';

export async function startRemoteHomeserver(options: RemoteHomeserverOptions): Promise<RemoteHomeserver> {
  const python = PythonWorker.acquire();
  const media = new Map<string, MediaBehaviour>();
  const files = new Map<string, PlainFile>();
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) json(res, 500, { errcode: 'M_UNKNOWN', error: String(error) });
      else res.destroy();
    });
  };
  const server: Server = options.tls ? createHttpsServer({ key: options.tls.key, cert: options.tls.cert }, handler) : createHttpServer(handler);
  const state = { connections: 0 };
  server.on(options.tls ? 'secureConnection' : 'connection', (socket: Socket) => {
    state.connections++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url!, 'http://remote.invalid');
    const recorded: RecordedRequest = { method: req.method!, path: req.url!, host: req.headers.host, authorization: authorizationValues(req.rawHeaders) };
    requests.push(recorded);

    const plain = files.get(url.pathname);
    if (plain) {
      res.writeHead(plain.status ?? 200, plain.headers ?? {});
      res.end(plain.body);
      return;
    }
    const federation = /^\/_matrix\/federation\/v1\/media\/(download|thumbnail)\/([^/]+)$/.exec(url.pathname);
    if (federation) {
      const behaviour = media.get(decodeURIComponent(federation[2]!));
      if (behaviour?.kind === 'legacy-only') {
        if (behaviour.unrecognized === 'html') {
          res.writeHead(404, { 'Content-Type': 'text/html' });
          res.end('<html><body>Not Found</body></html>');
        } else {
          json(res, behaviour.unrecognized === '405' ? 405 : 404, { errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' });
        }
        return;
      }
      const verdict = await authenticate(req, recorded);
      if (!verdict.ok) {
        json(res, 401, { errcode: 'M_UNAUTHORIZED', error: verdict.error ?? 'not authorised' });
        return;
      }
      await serveFederation(res, behaviour, federation[1] === 'thumbnail');
      return;
    }
    const legacy = /^\/_matrix\/media\/v3\/(download|thumbnail)\/([^/]+)\/([^/]+)$/.exec(url.pathname);
    if (legacy) {
      const behaviour = media.get(decodeURIComponent(legacy[3]!));
      if (url.searchParams.get('allow_remote') !== 'false' || decodeURIComponent(legacy[2]!) !== options.serverName) {
        json(res, 400, { errcode: 'M_UNKNOWN', error: 'this test server wants allow_remote=false and its own name' });
        return;
      }
      if (behaviour?.kind !== 'legacy-only') {
        json(res, 404, { errcode: 'M_NOT_FOUND', error: 'Not found' });
        return;
      }
      if (behaviour.redirectTo) {
        res.writeHead(307, { Location: behaviour.redirectTo });
        res.end();
        return;
      }
      res.writeHead(200, withDisposition({ 'Content-Type': behaviour.contentType ?? 'application/octet-stream', 'Content-Length': String(behaviour.bytes.length) }, behaviour.disposition));
      res.end(behaviour.bytes);
      return;
    }
    json(res, 404, { errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' });
  }

  async function authenticate(req: IncomingMessage, recorded: RecordedRequest): Promise<Verdict> {
    const schemes = recorded.authorization.map((h) => h.split(' ', 1)[0]);
    const scheme = schemes.includes('X-Matrix') ? 'X-Matrix' : schemes.includes('X-MSC4100-Scoped') && options.acceptScoped !== false ? 'X-MSC4100-Scoped' : 'X-Matrix';
    const verdict = await python.verifyRequest({
      method: req.method!, uri: req.url!, destination: options.serverName, headers: recorded.authorization, scheme, keys: options.trustedKeys,
    });
    recorded.verdict = { ...verdict, scheme };
    return verdict;
  }

  async function serveFederation(res: ServerResponse, behaviour: MediaBehaviour | undefined, thumbnail: boolean): Promise<void> {
    if (!behaviour) {
      json(res, 404, { errcode: 'M_NOT_FOUND', error: 'Not found' });
      return;
    }
    switch (behaviour.kind) {
      case 'error':
        json(res, behaviour.status, behaviour.body);
        return;
      case 'location':
        writeMultipart(res, 'strict', `Location: ${behaviour.location}\r\n`, Buffer.alloc(0));
        return;
      case 'multipart': {
        await behaviour.gate;
        const part = thumbnail && behaviour.thumbnail ? behaviour.thumbnail
          : { bytes: behaviour.bytes, contentType: behaviour.contentType ?? 'application/octet-stream', disposition: behaviour.disposition };
        const style = behaviour.style ?? 'strict';
        const eol = style === 'lf' ? '\n' : '\r\n';
        const names = style === 'header-case' ? ['CONTENT-TYPE', 'CONTENT-DISPOSITION'] : ['Content-Type', 'Content-Disposition'];
        let headers = `${names[0]}: ${part.contentType}${eol}`;
        if (part.disposition) headers += `${names[1]}: ${part.disposition}${eol}`;
        await writeMultipart(res, style, headers, part.bytes, behaviour.chunkSize);
        return;
      }
      case 'slow':
        await new Promise((resolve) => setTimeout(resolve, behaviour.delayMs));
        writeMultipart(res, 'strict', 'Content-Type: application/octet-stream\r\n', behaviour.bytes);
        return;
      case 'stall':
        res.writeHead(200, { 'Content-Type': `multipart/mixed; boundary=${BOUNDARY}` });
        res.write(`--${BOUNDARY}\r\nContent-Type: application/json\r\n\r\n{}\r\n--${BOUNDARY}\r\nContent-Type: image/png\r\n\r\n`);
        res.write(behaviour.bytes.subarray(0, behaviour.bytes.length >> 1)); // ...and nothing more
        return;
      case 'truncated':
        res.writeHead(200, { 'Content-Type': `multipart/mixed; boundary=${BOUNDARY}` });
        res.write(`--${BOUNDARY}\r\nContent-Type: application/json\r\n\r\n{}\r\n--${BOUNDARY}\r\nContent-Type: image/png\r\n\r\n`);
        res.write(behaviour.bytes.subarray(0, behaviour.bytes.length >> 1), () => setTimeout(() => res.socket?.destroy(), 20));
        return;
      case 'oversized': {
        const head = `--${BOUNDARY}\r\nContent-Type: application/json\r\n\r\n{}\r\n--${BOUNDARY}\r\nContent-Type: application/octet-stream\r\n\r\n`;
        const tail = `\r\n--${BOUNDARY}--\r\n`;
        const length = head.length + behaviour.size + tail.length;
        res.writeHead(200, { 'Content-Type': `multipart/mixed; boundary=${BOUNDARY}`, ...(behaviour.declareLength ? { 'Content-Length': String(length) } : {}) });
        res.write(head);
        // A declared length must be refused before any byte is read: send none, so a reader would stall.
        if (behaviour.declareLength) return;
        await writeChunks(res, slices(patternBytes(behaviour.size, 7), 64 * 1024));
        res.end(tail);
        return;
      }
      case 'declared-part':
        res.writeHead(200, { 'Content-Type': `multipart/mixed; boundary=${BOUNDARY}` });
        res.write(`--${BOUNDARY}\r\nContent-Type: application/json\r\n\r\n{}\r\n--${BOUNDARY}\r\nContent-Length: ${behaviour.declaredLength}\r\n\r\n`);
        return;
      case 'legacy-only':
        return;
    }
  }

  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    port,
    media,
    files,
    requests,
    get connections() {
      return state.connections;
    },
    set connections(value: number) {
      state.connections = value;
    },
    requestsFor: (prefix) => requests.filter((r) => r.path.startsWith(prefix)),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await python.release();
    },
  };
}

async function writeMultipart(res: ServerResponse, style: MultipartStyle, partHeaders: string, bytes: Buffer, chunkSize?: number): Promise<void> {
  const eol = style === 'lf' ? '\n' : '\r\n';
  const boundary = style === 'quoted-boundary' ? 'with space:and/slash?' : BOUNDARY;
  const contentType = style === 'quoted-boundary' ? `multipart/mixed; boundary="${boundary}"` : `multipart/mixed; boundary=${boundary}`;
  const jsonHeader = style === 'header-case' ? 'CONTENT-TYPE: application/json' : 'Content-Type: application/json';
  const preamble = style === 'preamble' ? `\r\nThis is the preamble.\r\n` : '';
  const afterJson = style === 'msc-example' ? `${eol}${eol}` : eol;
  const head = `${preamble}--${boundary}${eol}${jsonHeader}${eol}${eol}{}${afterJson}--${boundary}${eol}${partHeaders}${eol}`;
  const tail = style === 'msc-example' ? `${eol}--${boundary}` : `${eol}--${boundary}--${eol}`;
  res.writeHead(200, { 'Content-Type': contentType });
  res.write(head);
  if (chunkSize) await writeChunks(res, slices(bytes, chunkSize));
  else res.write(bytes);
  res.end(tail);
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

function withDisposition(headers: Record<string, string>, disposition: string | undefined): Record<string, string> {
  return disposition ? { ...headers, 'Content-Disposition': disposition } : headers;
}

function authorizationValues(rawHeaders: string[]): string[] {
  const values: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === 'authorization') values.push(rawHeaders[i + 1]!);
  return values;
}
