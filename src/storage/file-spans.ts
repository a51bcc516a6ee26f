// The file and byte span behind a datastore's read stream, for a sender that can read the file itself
// (positioned reads into buffers it reuses) instead of consuming the stream.
import type { Readable } from 'node:stream';

export interface FileSpan {
  /** Owned by the stream: it closes the descriptor when destroyed, so a sender must finish its reads first. */
  readonly fd: number;
  readonly start: number;
  /** Inclusive; start - 1 for an empty span. */
  readonly end: number;
  readonly chunkBytes: number;
}

const spans = new WeakMap<Readable, FileSpan>();

export function withFileSpan<T extends Readable>(stream: T, span: FileSpan): T {
  spans.set(stream, span);
  return stream;
}

/** The span of a stream nothing has read from yet; undefined for any other. */
export function fileSpanOf(stream: Readable): FileSpan | undefined {
  const span = spans.get(stream);
  return span !== undefined && stream.readableDidRead === false && !stream.destroyed ? span : undefined;
}
