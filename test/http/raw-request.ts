// node:http requests for what fetch cannot do: set Host, stream a body the server may refuse midway,
// and see exactly which headers came back.
import { request, type IncomingHttpHeaders } from 'node:http';

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  json(): Record<string, unknown>;
}

export interface RawRequestOptions {
  method?: string;
  headers?: Record<string, string>;
  /** A Buffer, or chunks written one by one (chunked transfer encoding unless content-length is set). */
  body?: Buffer | AsyncIterable<Buffer>;
}

/** Resolves with the response even if the server closes the connection while the body is still being sent. */
export function rawRequest(url: string, options: RawRequestOptions = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode!, headers: res.headers, body, json: () => JSON.parse(body.toString('utf8')) });
      });
    });
    // After the answer, a refused upload typically ends in EPIPE/ECONNRESET on our side: expected.
    req.on('error', (error) => {
      if (!answered) reject(error);
    });
    void send(req, options.body).catch(() => undefined);
  });
}

async function send(req: ReturnType<typeof request>, body: RawRequestOptions['body']): Promise<void> {
  if (body === undefined) return void req.end();
  if (Buffer.isBuffer(body)) return void req.end(body);
  for await (const chunk of body) {
    if (req.destroyed) return;
    if (!req.write(chunk)) await writable(req);
  }
  req.end();
}

/** Resolves on 'drain', or on 'close' when the server has given up on the body. */
function writable(req: ReturnType<typeof request>): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      req.off('drain', done);
      req.off('close', done);
      resolve();
    };
    req.on('drain', done);
    req.on('close', done);
  });
}
