// Sends a file span to a response by positioned reads into a few reused buffers. A stream allocates a
// fresh buffer per read, and at 1 GiB/s faulting in, zeroing and collecting those costs the process about
// as much CPU as the copies themselves.
import { read } from 'node:fs';
import type { ServerResponse } from 'node:http';
import type { BodyFrame } from '../matrix/multipart.js';
import type { FileSpan } from '../storage/file-spans.js';

// One buffer on its way to the client and one being read: what a piped stream holds, with the read ahead.
const BUFFERS_PER_RESPONSE = 2;
// Buffers kept for the next responses, per size: enough for a few downloads at once, a few MiB at most.
const KEPT_PER_SIZE = 8;
const free = new Map<number, Buffer[]>();

function takeBuffer(bytes: number): Buffer {
  return free.get(bytes)?.pop() ?? Buffer.allocUnsafeSlow(bytes);
}

function keepBuffer(buffer: Buffer): void {
  const kept = free.get(buffer.length) ?? [];
  if (kept.length < KEPT_PER_SIZE) kept.push(buffer);
  free.set(buffer.length, kept);
}

/** What Node's streams call a consumer that closed before the end, so callers treat both paths alike. */
function prematureClose(): Error {
  return Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
}

/**
 * Writes the frame's head, the span's bytes, then its tail, and ends `res`. Settles only once no read is under way, so
 * the caller may close the descriptor then; a buffer returns to the pool only when its write has flushed.
 */
export function pumpFile(span: FileSpan, res: ServerResponse, frame?: BodyFrame): Promise<void> {
  return new Promise((resolve, reject) => {
    let position = span.start;
    let reading = false;
    let unflushed = 0;
    let ending = false;
    let outcome: { error?: Error } | undefined;
    const settle = (result: { error?: Error }) => {
      outcome ??= result;
      if (reading) return; // the read's callback settles
      res.off('close', onClose);
      if (outcome.error) reject(outcome.error);
      else resolve();
    };
    const onClose = () => {
      if (!res.writableFinished) settle({ error: prematureClose() });
    };
    const next = () => {
      if (outcome || reading || ending) return;
      if (position > span.end) {
        ending = true;
        res.end(frame?.tail ?? '', () => settle({}));
        return;
      }
      if (unflushed + 1 > BUFFERS_PER_RESPONSE) return;
      reading = true;
      const buffer = takeBuffer(span.chunkBytes);
      read(span.fd, buffer, 0, Math.min(buffer.length, span.end - position + 1), position, (error, bytes) => {
        reading = false;
        if (outcome || error || bytes === 0) {
          keepBuffer(buffer);
          settle(outcome ?? { error: error ?? new Error('the file ended before its recorded size') });
          return;
        }
        position += bytes;
        unflushed += 1;
        res.write(bytes === buffer.length ? buffer : buffer.subarray(0, bytes), (writeError) => {
          unflushed -= 1;
          if (!writeError) keepBuffer(buffer);
          next();
        });
        next();
      });
    };
    // A client gone before the first write never sends 'close' again (and a write to it never calls back).
    if (res.destroyed) return reject(prematureClose());
    res.on('close', onClose);
    if (frame) res.write(frame.head);
    next();
  });
}
