// A pass-through that hashes and counts the bytes, failing as soon as they pass the limit.
import { createHash, type Hash } from 'node:crypto';
import { finished, Transform, type Readable, type TransformCallback, type Writable } from 'node:stream';

export class HashingMeter extends Transform {
  private readonly hash: Hash = createHash('sha256');
  private count = 0;

  constructor(private readonly maxBytes: number, private readonly tooLarge: () => Error) {
    super();
  }

  get bytes(): number {
    return this.count;
  }

  digestHex(): string {
    return this.hash.digest('hex');
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.count += chunk.length;
    if (this.count > this.maxBytes) {
      callback(this.tooLarge());
      return;
    }
    this.hash.update(chunk);
    callback(null, chunk);
  }
}

/**
 * Pipes `source` into `meter` without ever destroying `source`: when it is an HTTP request, the
 * socket must stay open so a 413 can still be answered. A failing source fails the meter.
 */
export function feedWithoutDestroying(source: Readable, meter: Writable): void {
  source.pipe(meter);
  const stopWatching = finished(source, { writable: false }, (error) => {
    if (error) meter.destroy(error);
  });
  meter.once('error', () => {
    stopWatching();
    source.unpipe(meter);
  });
}
