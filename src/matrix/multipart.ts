// The federation media body (MSC3916, server-server API "Content Repository"): multipart/mixed with a JSON
// part and then the media part (bytes, or a Location header). Written strictly per RFC 2046 here, read
// leniently by multipart-reader, and streamed both ways: the media bytes are never held in memory.
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';

export class MultipartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MultipartError';
  }
}

/** The second part: the media with its headers, or a Location to fetch it from (with an empty body). */
export type MediaPart =
  | { readonly headers: Readonly<Record<string, string>>; readonly body: AsyncIterable<Uint8Array> }
  | { readonly location: string };

// RFC 2046 §5.1.1 bchars: 1–70 characters, the last not a space.
const BOUNDARY = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/;
export const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const HEADER_VALUE = /^[^\r\n\0]*$/;

/** 122 random bits; randomUUID draws from a buffered pool, unlike randomBytes on every call. */
export function generateBoundary(): string {
  return randomUUID().replaceAll('-', '');
}

/** The Content-Type header value announcing `boundary`. */
export function multipartContentType(boundary: string): string {
  assertBoundary(boundary);
  return `multipart/mixed; boundary=${TOKEN.test(boundary) ? boundary : `"${boundary}"`}`;
}

/**
 * The body as a sequence of chunks: the JSON part at once, then the media chunks as `media.body` yields
 * them, so a consumer's back-pressure reaches the media source.
 */
export async function* multipartMixedParts(
  boundary: string,
  metadata: Record<string, unknown>,
  media: MediaPart,
): AsyncGenerator<Buffer> {
  if ('location' in media) {
    yield jsonPart(boundary, metadata);
    yield Buffer.from(`${headerLines({ Location: media.location })}\r\n\r\n--${boundary}--\r\n`, 'utf8');
    return;
  }
  yield* framedBody(multipartMixedFrame(boundary, metadata, media.headers), media.body);
}

/** Bytes written before and after a media part's body. */
export interface BodyFrame {
  readonly head: Buffer;
  readonly tail: Buffer;
}

/** `body` inside `frame`, chunk by chunk as the body yields them (empty ones dropped). */
export async function* framedBody(frame: BodyFrame, body: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
  yield frame.head;
  for await (const chunk of body) {
    if (chunk.byteLength > 0) yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  }
  yield frame.tail;
}

/**
 * What goes before the media bytes (the JSON part and the media part's headers) and after them: around a
 * body in memory or one a sender reads itself, the same bytes as the streamed form.
 */
export function multipartMixedFrame(boundary: string, metadata: Record<string, unknown>, headers: Readonly<Record<string, string>>): BodyFrame {
  return { head: Buffer.concat([jsonPart(boundary, metadata), Buffer.from(`${headerLines(headers)}\r\n`, 'utf8')]), tail: closeDelimiter(boundary) };
}

/** Up to the media part's headers: the JSON part and the delimiter after it. */
function jsonPart(boundary: string, metadata: Record<string, unknown>): Buffer {
  assertBoundary(boundary);
  // Leading CRLF as Synapse writes it: RFC 2046 lets it belong to the first delimiter, and strict readers expect it.
  return Buffer.from(`\r\n--${boundary}\r\nContent-Type: application/json\r\n\r\n${JSON.stringify(metadata)}\r\n--${boundary}\r\n`, 'utf8');
}

function closeDelimiter(boundary: string): Buffer {
  return Buffer.from(`\r\n--${boundary}--\r\n`, 'utf8');
}

export function multipartMixedStream(boundary: string, metadata: Record<string, unknown>, media: MediaPart): Readable {
  return Readable.from(multipartMixedParts(boundary, metadata, media), { objectMode: false });
}

function headerLines(headers: Readonly<Record<string, string>>): string {
  return Object.entries(headers)
    .map(([name, value]) => {
      if (!TOKEN.test(name)) throw new MultipartError(`invalid part header name ${JSON.stringify(name)}`);
      if (!HEADER_VALUE.test(value)) throw new MultipartError(`the value of part header ${name} contains a line break`);
      return `${name}: ${value}\r\n`;
    })
    .join('');
}

function assertBoundary(boundary: string): void {
  if (!BOUNDARY.test(boundary)) throw new MultipartError('a multipart boundary must be 1–70 RFC 2046 characters');
}

/** The boundary of a `multipart/mixed` Content-Type value; token or quoted, parameter name in any case. */
export function parseMultipartBoundary(contentType: string): string {
  const semicolon = contentType.indexOf(';');
  const mediaType = (semicolon === -1 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase();
  if (mediaType !== 'multipart/mixed') throw new MultipartError(`expected multipart/mixed, got ${JSON.stringify(mediaType.slice(0, 100))}`);
  const param = /[ \t]*;[ \t]*([^\s=;]+)[ \t]*=[ \t]*("(?:[^"\\]|\\.)*"|[^;\s"]*)[ \t]*/y;
  param.lastIndex = semicolon === -1 ? contentType.length : semicolon;
  let boundary: string | undefined;
  while (param.lastIndex < contentType.length) {
    const match = param.exec(contentType);
    if (match === null) throw new MultipartError('malformed parameters in the multipart Content-Type');
    if (match[1]!.toLowerCase() !== 'boundary') continue;
    if (boundary !== undefined) throw new MultipartError('the multipart Content-Type has two boundary parameters');
    const value = match[2]!;
    boundary = value.startsWith('"') ? value.slice(1, -1).replace(/\\(.)/g, '$1') : value;
  }
  if (boundary === undefined) throw new MultipartError('the multipart Content-Type has no boundary parameter');
  assertBoundary(boundary);
  return boundary;
}
