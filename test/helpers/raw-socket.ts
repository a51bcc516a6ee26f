// Requests written byte for byte on a TCP socket: doubled or missing headers, conflicting lengths, HTTP/1.0,
// anything node:http would refuse to send. The answer is parsed just enough to check status and body.
import { connect } from 'node:net';

export interface SocketResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** The body as JSON, or undefined when it is not JSON. */
  json(): Record<string, unknown> | undefined;
}

export interface RawSocketRequest {
  method?: string;
  path: string;
  /** Header lines in order, exactly as written (a name may repeat). */
  headers?: [string, string][];
  body?: Buffer | string;
  /** 'HTTP/1.1' by default. */
  version?: string;
}

/** The request's bytes; Connection: close is added so that the answer ends with the connection. */
export function requestBytes(req: RawSocketRequest): Buffer {
  const lines = [`${req.method ?? 'GET'} ${req.path} ${req.version ?? 'HTTP/1.1'}`, ...(req.headers ?? []).map(([n, v]) => `${n}: ${v}`), 'Connection: close'];
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), Buffer.from(req.body ?? '')]);
}

/**
 * Sends `bytes` to 127.0.0.1:`port` (not half-closing: the server would drop a pending answer) and parses the
 * answer; `localAddress` (another loopback address) makes the connection come from a different peer.
 */
export function sendRaw(port: number, bytes: Buffer, timeoutMs = 10_000, localAddress?: string): Promise<SocketResponse> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect({ port, host: '127.0.0.1', localAddress }, () => socket.write(bytes));
    const timer = setTimeout(() => socket.destroy(new Error('no answer in time')), timeoutMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    // The server may close while our body is still being written: its answer is what counts.
    socket.on('error', (error) => {
      if (chunks.length === 0) {
        clearTimeout(timer);
        reject(error);
      }
    });
    socket.on('close', () => {
      clearTimeout(timer);
      try {
        resolve(parseResponse(Buffer.concat(chunks)));
      } catch (error) {
        reject(error as Error);
      }
    });
  });
}

export function parseResponse(raw: Buffer): SocketResponse {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`no complete response: ${JSON.stringify(raw.toString('latin1').slice(0, 80))}`);
  const [statusLine, ...lines] = raw.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine!)?.[1]);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body = raw.subarray(end + 4);
  if (headers['transfer-encoding'] === 'chunked') body = dechunk(body);
  return {
    status, headers, body,
    json: () => {
      try {
        const value: unknown = JSON.parse(body.toString('utf8'));
        return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
      } catch {
        return undefined;
      }
    },
  };
}

function dechunk(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = body.indexOf('\r\n', at);
    if (lineEnd < 0) break;
    const size = parseInt(body.subarray(at, lineEnd).toString('latin1'), 16);
    if (!(size > 0)) break;
    parts.push(body.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
  return Buffer.concat(parts);
}
