// Small blobs are read whole in one read and answered in one write; the most used of them stay in memory
// by sha256, within a byte budget. Only bytes are kept: the media records still decide what may be served.
import { close, open, read } from 'node:fs';

export interface SmallBlobSettings {
  /** Blobs up to this size are read whole; 0: none (every blob is streamed). */
  readonly maxBytes: number;
  /** Memory for the most used small blobs; 0: each is read from disk every time. */
  readonly cacheBytes: number;
}

export class SmallBlobs {
  // A Map's order is its insertion order: re-inserting on use keeps the least recently used first.
  private readonly entries = new Map<string, Buffer>();
  private totalBytes = 0;

  constructor(private readonly settings: SmallBlobSettings) {}

  get maxBytes(): number {
    return this.settings.maxBytes;
  }

  /** The cached bytes of `sha256`, or those read from its file (exactly `size` of them) and remembered; `pathOf` only on a miss. */
  async read(sha256: string, pathOf: () => string, size: number): Promise<Buffer> {
    const cached = this.entries.get(sha256);
    if (cached !== undefined) {
      this.entries.delete(sha256);
      this.entries.set(sha256, cached);
      return cached;
    }
    const bytes = await readWholeFile(pathOf(), size);
    this.remember(sha256, bytes);
    return bytes;
  }

  /** Forgets a blob whose file was deleted. */
  forget(sha256: string): void {
    const bytes = this.entries.get(sha256);
    if (bytes === undefined) return;
    this.entries.delete(sha256);
    this.totalBytes -= bytes.length;
  }

  get cachedBytes(): number {
    return this.totalBytes;
  }

  private remember(sha256: string, bytes: Buffer): void {
    if (bytes.length > this.settings.cacheBytes || this.entries.has(sha256)) return;
    this.entries.set(sha256, bytes);
    this.totalBytes += bytes.length;
    for (const [oldest, evicted] of this.entries) {
      if (this.totalBytes <= this.settings.cacheBytes) break;
      this.entries.delete(oldest);
      this.totalBytes -= evicted.length;
    }
  }
}

/**
 * The file's first `size` bytes by callback fs (no FileHandle, no stream): open, read, close. A file shorter
 * than its record says is an error, never a short body under a longer Content-Length.
 */
export function readWholeFile(path: string, size: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    open(path, 'r', (openError, fd) => {
      if (openError) return reject(openError);
      // Unpooled: a cached blob must not pin a shared 8 KiB slab.
      const buffer = Buffer.allocUnsafeSlow(size);
      const finish = (error: Error | null) => close(fd, (closeError) => {
        if (error ?? closeError) reject(error ?? closeError);
        else resolve(buffer);
      });
      const readFrom = (offset: number): void => {
        if (offset === size) return finish(null);
        read(fd, buffer, offset, size - offset, offset, (readError, bytesRead) => {
          if (readError) return finish(readError);
          if (bytesRead === 0) return finish(new Error(`blob file ended after ${offset} of ${size} bytes`));
          readFrom(offset + bytesRead);
        });
      };
      readFrom(0);
    });
  });
}
