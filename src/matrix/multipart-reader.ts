// Reading the federation media body (multipart/mixed, see multipart.ts) leniently and as a stream.
import { Readable } from 'node:stream';
import { mediaTypeEssence } from './content-disposition.js';
import { MultipartError, parseMultipartBoundary, TOKEN } from './multipart.js';

export interface MultipartLimits {
  /** Header section of one part, in bytes. */
  readonly maxHeaderBytes: number;
  /** The JSON metadata part, in bytes. */
  readonly maxJsonBytes: number;
  /** Text before the first boundary, in bytes. */
  readonly maxPreambleBytes: number;
}

export const DEFAULT_MULTIPART_LIMITS: MultipartLimits = {
  maxHeaderBytes: 16 * 1024,
  maxJsonBytes: 64 * 1024,
  maxPreambleBytes: 16 * 1024,
};

export interface MultipartMediaResponse {
  /** The first part's JSON object; the spec says it is currently always {}. */
  readonly metadata: Record<string, unknown>;
  /** The second part's headers, names lower-cased. */
  readonly headers: Readonly<Record<string, string>>;
  /** The second part's Location header: when set, fetch the media there and ignore `body`. */
  readonly location: string | undefined;
  /** The second part's bytes, streamed; it errors if the input ends before a closing boundary. */
  readonly body: Readable;
}

const CR = 0x0d;
const LF = 0x0a;
const DASH = 0x2d;
const SPACE = 0x20;
const TAB = 0x09;
// Transport padding allowed after a boundary (RFC 2046 LWSP); capped so it cannot grow the buffer.
const MAX_BOUNDARY_PADDING = 64;

/**
 * Reads the JSON part and the second part's headers, and hands back the second part's bytes as a stream.
 * Lenient: CRLF or bare LF line ends, with or without a preamble, header names in any case, and a
 * missing final "--". Everything hostile input could grow is capped by `limits`.
 */
export async function readMultipartMixed(
  source: AsyncIterable<Uint8Array>,
  contentType: string,
  limits: Partial<MultipartLimits> = {},
): Promise<MultipartMediaResponse> {
  const { maxHeaderBytes, maxJsonBytes, maxPreambleBytes } = { ...DEFAULT_MULTIPART_LIMITS, ...limits };
  const scanner = new PartScanner(source, parseMultipartBoundary(contentType));
  try {
    await scanner.skipPreamble(maxPreambleBytes);
    const jsonHeaders = await scanner.readHeaders(maxHeaderBytes);
    const jsonType = jsonHeaders['content-type'];
    if (jsonType !== undefined && mediaTypeEssence(jsonType) !== 'application/json') {
      throw new MultipartError(`the first part must be application/json, not ${JSON.stringify(mediaTypeEssence(jsonType).slice(0, 100))}`);
    }
    const metadata = await scanner.readJsonPart(maxJsonBytes);
    const headers = await scanner.readHeaders(maxHeaderBytes);
    return { metadata, headers, location: headers.location, body: scanner.bodyStream() };
  } catch (error) {
    scanner.close();
    throw error;
  }
}

type Delimiter = 'part' | 'close';
type Scan =
  | { readonly kind: 'delimiter'; readonly dataEnd: number; readonly next: number; readonly delimiter: Delimiter }
  | { readonly kind: 'more'; readonly safeEnd: number };
type Candidate = { readonly kind: 'delimiter'; readonly next: number; readonly delimiter: Delimiter } | { readonly kind: 'none' | 'more' };

/** Splits the input at boundary delimiters, holding back only the bytes that might start one. */
class PartScanner {
  private buffer: Buffer = Buffer.alloc(0);
  /** True at the start of the body and right after a header section, where "--boundary" needs no line break before it. */
  private atLineStart = true;
  private sourceDone = false;
  private closed = false;
  /** "\n--boundary"; a CR before it belongs to the delimiter too. */
  private readonly needle: Buffer;
  private readonly input: AsyncIterator<Uint8Array>;

  constructor(
    private readonly source: AsyncIterable<Uint8Array>,
    boundary: string,
  ) {
    this.input = source[Symbol.asyncIterator]();
    this.needle = Buffer.from(`\n--${boundary}`, 'latin1');
  }

  async skipPreamble(maxBytes: number): Promise<void> {
    let skipped = 0;
    for (;;) {
      const segment = await this.nextSegment('before the first boundary');
      skipped += segment.data.length;
      if (skipped > maxBytes) throw new MultipartError(`more than ${maxBytes} bytes before the first boundary`);
      if (segment.delimiter === 'close') throw new MultipartError('the multipart body has no parts');
      if (segment.delimiter === 'part') return;
    }
  }

  /** The header section up to its empty line, names lower-cased; folded lines are joined. */
  async readHeaders(maxBytes: number): Promise<Record<string, string>> {
    const headers: Record<string, string> = Object.create(null); // a part header named __proto__ stays a header
    let last: string | undefined;
    let remaining = maxBytes;
    for (;;) {
      const line = await this.readLine(remaining);
      remaining -= Buffer.byteLength(line) + 1;
      if (line === '') break;
      if ((line.startsWith(' ') || line.startsWith('\t')) && last !== undefined) {
        headers[last] = `${headers[last]} ${line.trim()}`;
        continue;
      }
      const colon = line.indexOf(':');
      const name = colon === -1 ? '' : line.slice(0, colon).trim().toLowerCase();
      if (!TOKEN.test(name)) throw new MultipartError('malformed header line in a multipart part');
      if (Object.hasOwn(headers, name)) throw new MultipartError(`duplicate ${name} header in a multipart part`);
      headers[name] = line.slice(colon + 1).trim();
      last = name;
    }
    this.atLineStart = true;
    return headers;
  }

  async readJsonPart(maxBytes: number): Promise<Record<string, unknown>> {
    const chunks: Buffer[] = [];
    let size = 0;
    for (;;) {
      const segment = await this.nextSegment('inside the JSON part');
      size += segment.data.length;
      if (size > maxBytes) throw new MultipartError(`the JSON part is larger than ${maxBytes} bytes`);
      chunks.push(segment.data);
      if (segment.delimiter === 'close') throw new MultipartError('the multipart body ends after the JSON part: no media part');
      if (segment.delimiter === 'part') break;
    }
    let metadata: unknown;
    try {
      metadata = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      throw new MultipartError('the first part is not valid JSON');
    }
    if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
      throw new MultipartError('the first part is not a JSON object');
    }
    return metadata as Record<string, unknown>;
  }

  /** The current part's bytes as a stream that ends at the next delimiter, pulling input only on demand. */
  bodyStream(): Readable {
    const body = new Readable({
      read: () => {
        this.nextSegment('inside the media part').then(
          (segment) => {
            if (segment.delimiter === null) {
              body.push(segment.data);
              return;
            }
            if (segment.data.length > 0) body.push(segment.data);
            body.push(null);
            this.close(); // anything after the media part (epilogue, extra parts) is not read
          },
          (error: unknown) => body.destroy(error instanceof Error ? error : new MultipartError(String(error))),
        );
      },
      destroy: (error, callback) => {
        this.close();
        callback(error);
      },
    });
    return body;
  }

  /**
   * Releases the input without waiting for it: a Readable is destroyed at once (its iterator's return()
   * would wait for a pending read on a stalled connection), any other iterator is asked to return.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.source instanceof Readable) this.source.destroy();
    else void Promise.resolve(this.input.return?.()).catch(() => undefined);
  }

  /**
   * The next run of bytes of the current part: up to the next delimiter (which is then consumed), or as
   * much as can be released without splitting a delimiter that might continue in the next chunk.
   */
  private async nextSegment(where: string): Promise<{ data: Buffer; delimiter: Delimiter | null }> {
    for (;;) {
      const finalScan = this.sourceDone; // once the input has ended, a scan that finds nothing is the last one
      const scan = this.scan();
      if (scan.kind === 'delimiter') {
        const data = this.buffer.subarray(0, scan.dataEnd);
        this.buffer = this.buffer.subarray(scan.next);
        this.atLineStart = true;
        return { data, delimiter: scan.delimiter };
      }
      if (scan.safeEnd > 0) {
        const data = this.buffer.subarray(0, scan.safeEnd);
        this.buffer = this.buffer.subarray(scan.safeEnd);
        this.atLineStart = false;
        return { data, delimiter: null };
      }
      if (finalScan) throw new MultipartError(`the multipart body ended ${where}, before a boundary`);
      await this.pull();
    }
  }

  private async readLine(maxBytes: number): Promise<string> {
    for (;;) {
      const end = this.buffer.indexOf(LF);
      if (end > maxBytes || (end === -1 && this.buffer.length > maxBytes)) {
        throw new MultipartError('multipart part headers are too large');
      }
      if (end !== -1) {
        const line = this.buffer.subarray(0, end > 0 && this.buffer[end - 1] === CR ? end - 1 : end);
        this.buffer = this.buffer.subarray(end + 1);
        return line.toString('utf8');
      }
      if (!(await this.pull())) throw new MultipartError('the multipart body ended inside a part header');
    }
  }

  private async pull(): Promise<boolean> {
    if (this.sourceDone) return false;
    const result = await this.input.next();
    if (result.done) {
      this.sourceDone = true;
      return false;
    }
    const chunk = result.value;
    const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.buffer = this.buffer.length === 0 ? bytes : Buffer.concat([this.buffer, bytes]);
    return true;
  }

  private scan(): Scan {
    const buffer = this.buffer;
    if (this.atLineStart) {
      const atStart = this.candidate(0, 1);
      if (atStart.kind === 'delimiter') return { kind: 'delimiter', dataEnd: 0, next: atStart.next, delimiter: atStart.delimiter };
      if (atStart.kind === 'more') return { kind: 'more', safeEnd: 0 };
    }
    for (let from = 0; ; ) {
      const index = buffer.indexOf(this.needle, from);
      if (index === -1) break;
      const dataEnd = index > 0 && buffer[index - 1] === CR ? index - 1 : index;
      const found = this.candidate(index, 0);
      if (found.kind === 'delimiter') return { kind: 'delimiter', dataEnd, next: found.next, delimiter: found.delimiter };
      if (found.kind === 'more') return { kind: 'more', safeEnd: dataEnd };
      from = index + 1;
    }
    // A delimiter may begin at a line feed in the last bytes (its CR included): hold from there until the
    // next chunk. Without one, everything goes, and the next chunk is scanned as it is, never copied.
    const lineFeed = buffer.indexOf(LF, Math.max(0, buffer.length - this.needle.length));
    if (lineFeed === -1) return { kind: 'more', safeEnd: buffer.length > 0 && buffer[buffer.length - 1] === CR ? buffer.length - 1 : buffer.length };
    return { kind: 'more', safeEnd: lineFeed > 0 && buffer[lineFeed - 1] === CR ? lineFeed - 1 : lineFeed };
  }

  /**
   * Whether the needle (from `needleOffset`) at `index` is a delimiter: it must be followed by "--"
   * (close), by padding and a line end (next part), or by the end of input (close without "--").
   * Anything else, like "--boundaryX", is content.
   */
  private candidate(index: number, needleOffset: number): Candidate {
    const buffer = this.buffer;
    const length = this.needle.length - needleOffset;
    const available = Math.min(length, buffer.length - index);
    if (buffer.compare(this.needle, needleOffset, needleOffset + available, index, index + available) !== 0) return { kind: 'none' };
    const needMore: Candidate = { kind: this.sourceDone ? 'none' : 'more' };
    if (available < length) return needMore;
    let at = index + length;
    if (at === buffer.length) return this.sourceDone ? { kind: 'delimiter', next: at, delimiter: 'close' } : needMore;
    if (buffer[at] === DASH) {
      if (at + 1 === buffer.length) return needMore;
      return buffer[at + 1] === DASH ? { kind: 'delimiter', next: at + 2, delimiter: 'close' } : { kind: 'none' };
    }
    const paddingStart = at;
    while (at < buffer.length && (buffer[at] === SPACE || buffer[at] === TAB)) {
      if (++at - paddingStart > MAX_BOUNDARY_PADDING) return { kind: 'none' };
    }
    if (at === buffer.length) return this.sourceDone ? { kind: 'delimiter', next: at, delimiter: 'close' } : needMore;
    if (buffer[at] === LF) return { kind: 'delimiter', next: at + 1, delimiter: 'part' };
    if (buffer[at] !== CR) return { kind: 'none' };
    if (at + 1 === buffer.length) return needMore;
    return buffer[at + 1] === LF ? { kind: 'delimiter', next: at + 2, delimiter: 'part' } : { kind: 'none' };
  }
}
