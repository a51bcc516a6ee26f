// node:http requests for what fetch cannot do: set Host, stream a body the server may refuse midway,
// see exactly which headers came back, and see a body cut short. Also the backpressure-aware writer
// that these requests and the fake servers share.
import { request, type IncomingHttpHeaders } from 'node:http';
import type { Writable } from 'node:stream';

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** False when the connection was cut before the body ended (only with allowIncomplete). */
  complete: boolean;
  json(): Record<string, unknown>;
}

export interface RawRequestOptions {
  method?: string;
  headers?: Record<string, string>;
  /** A Buffer, or chunks written one by one (chunked transfer encoding unless content-length is set). */
  body?: Buffer | AsyncIterable<Buffer>;
  /** Resolve with complete: false, rather than reject, when the connection is cut before the body ends. */
  allowIncomplete?: boolean;
  /** Told of each chunk of the response body as it arrives. */
  onData?: (chunk: Buffer) => void;
}

/** Resolves with the response even if the server closes the connection while the body is still being sent. */
export function rawRequest(url: string, options: RawRequestOptions = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      let complete = false;
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        options.onData?.(chunk);
      });
      res.on('end', () => (complete = true));
      res.on('error', (error) => {
        if (!options.allowIncomplete) reject(error);
      });
      res.on('close', () => {
        if (!complete && !options.allowIncomplete) return reject(new Error(`${url}: the connection closed before the body ended`));
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode!, headers: res.headers, body, complete, json: () => JSON.parse(body.toString('utf8')) as Record<string, unknown> });
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
  await writeChunks(req, body);
  req.end();
}

/** Writes each chunk, waiting for 'drain' when the stream asks; stops once the stream is destroyed. */
export async function writeChunks(stream: Writable, chunks: Iterable<Buffer> | AsyncIterable<Buffer>): Promise<void> {
  for await (const chunk of chunks) {
    if (stream.destroyed) return;
    if (!stream.write(chunk)) await writable(stream);
  }
}

/** `bytes` in slices of `size`. */
export function* slices(bytes: Buffer, size: number): Generator<Buffer> {
  for (let offset = 0; offset < bytes.length; offset += size) yield bytes.subarray(offset, offset + size);
}

/** Resolves on 'drain', or on 'close' when the other side has given up on the body. */
function writable(stream: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}

/**
 * `first`, then nothing until `answered.done` is set (the body fails after 5 s): a service that answers
 * before the rest of the body passes, one that reads on waits and fails the request.
 */
export async function* stalledBody(first: Buffer, answered: { done: boolean }): AsyncGenerator<Buffer> {
  yield first;
  for (let i = 0; i < 250 && !answered.done; i++) await new Promise((resolve) => setTimeout(resolve, 20));
  if (!answered.done) throw new Error('the service waited for the rest of the body');
}
