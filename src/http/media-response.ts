// Writes media to the client: the spec's headers, conditional requests, one byte range, HEAD.
import type { Request, Response } from 'express';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { MatrixError } from '../matrix/errors.js';
import { framedBody, type BodyFrame } from '../matrix/multipart.js';
import { clientWentAway } from './errors.js';
import type { ServableMedia } from '../media/servable.js';
import type { ByteRange } from '../storage/datastore.js';
import { announcedTarget, endOffloaded } from './proxy-offload.js';
import { fileSpanOf } from '../storage/file-spans.js';
import { pumpFile } from './file-pump.js';

/** The spec's recommended policy for served content (content_repo.md, "Security considerations"). */
const MEDIA_CONTENT_SECURITY_POLICY =
  "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; object-src 'self';";

// Media never changes under its ID; a day bounds how long a deleted item lingers in caches.
const MAX_AGE_S = 86_400;
/** Authenticated media must not sit in shared caches, where a request without a token could get it. */
export const PRIVATE_CACHE = `private, max-age=${MAX_AGE_S}, immutable`;
export const PUBLIC_CACHE = `public, max-age=${MAX_AGE_S}, immutable`;

export interface SendOptions {
  disposition: string;
  cacheControl: string;
  /**
   * 307 to the datastore's URL (presigned or CDN) when it offers one: 'always', or 'withoutRange' for
   * the legacy endpoints, whose older clients and players re-request ranges badly across a redirect.
   */
  redirect?: 'always' | 'withoutRange';
}

export async function sendMedia(req: Request, res: Response, media: ServableMedia, options: SendOptions): Promise<void> {
  const etag = media.sha256 === undefined ? undefined : `"${media.sha256}"`;
  const notModified = etag !== undefined && ifNoneMatch(req.headers['if-none-match'], etag);
  const range = notModified || media.size === undefined || !rangeApplies(req, etag) ? undefined : parseRange(req.headers.range!, media.size);
  if (range === 'unsatisfiable') {
    res.setHeader('Content-Range', `bytes */${media.size}`);
    throw new MatrixError(416, 'M_UNKNOWN', 'The requested range is not satisfiable');
  }
  if (!notModified && req.method === 'GET' && options.redirect && !(options.redirect === 'withoutRange' && req.headers.range !== undefined)) {
    const location = await media.redirectUrl?.({ contentType: media.contentType, contentDisposition: options.disposition });
    if (location !== undefined) {
      // A presigned URL expires: nobody may keep the redirect.
      res.setHeader('Cache-Control', 'no-store');
      res.setHeader('Location', location);
      res.status(307).end();
      return;
    }
  }
  const offload = notModified ? undefined : announcedTarget(req, media.proxyTarget?.());
  // Read or opened before any header is set, so a failure still leaves as a clean Matrix error.
  const wanted = req.method !== 'HEAD' && !notModified && !offload;
  const whole = wanted && media.wholeBody ? await media.wholeBody() : undefined;
  const body = wanted && !whole ? await media.open(range) : undefined;
  try {
    // An offloaded body's length and ranges are the proxy's to state, from the file it sends.
    setMediaHeaders(res, media, options, etag, notModified ? undefined : { range, lengths: !offload });
  } catch (error) {
    body?.destroy();
    throw error;
  }
  if (notModified) {
    res.status(304).end();
    return;
  }
  if (offload) return endOffloaded(res, offload);
  if (whole) return sendBuffer(res, range ? whole.subarray(range.start, range.end + 1) : whole);
  if (!body) {
    res.end();
    return;
  }
  await sendStream(res, body);
}

function setMediaHeaders(res: Response, media: ServableMedia, options: SendOptions, etag: string | undefined, content?: { range: ByteRange | undefined; lengths: boolean }): void {
  if (etag) res.setHeader('ETag', etag);
  res.setHeader('Cache-Control', options.cacheControl);
  res.setHeader('Content-Security-Policy', MEDIA_CONTENT_SECURITY_POLICY);
  res.setHeader('Cross-Origin-Resource-Policy', 'cross-origin');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  if (!content) return;
  const { range } = content;
  res.setHeader('Content-Type', media.contentType);
  res.setHeader('Content-Disposition', options.disposition);
  if (media.size !== undefined && content.lengths) {
    res.setHeader('Accept-Ranges', 'bytes');
    if (range) {
      res.status(206);
      res.setHeader('Content-Range', `bytes ${range.start}-${range.end}/${media.size}`);
    }
    res.setHeader('Content-Length', String(range ? range.end - range.start + 1 : media.size));
  }
}

/** A body that fits one write: no stream, unless the client's bandwidth share must pace it. */
export async function sendBuffer(res: Response, bytes: Buffer): Promise<void> {
  const throttle: unknown = res.locals.throttle;
  if (throttle instanceof Transform) return sendStream(res, Readable.from([bytes]));
  res.end(bytes);
}

/**
 * Streams `body` (inside `frame`, if given) to the client, through its bandwidth share if it has one; a
 * file nothing paces is read straight into reused buffers. The body is destroyed (its file closed)
 * however this ends; a client that went away is not an error of ours.
 */
export async function sendStream(res: Response, body: Readable, frame?: BodyFrame): Promise<void> {
  const throttle: unknown = res.locals.throttle;
  const span = throttle === undefined ? fileSpanOf(body) : undefined;
  try {
    if (span) await pumpFile(span, res, frame);
    else {
      const source = frame ? Readable.from(framedBody(frame, body), { objectMode: false }) : body;
      await (throttle instanceof Transform ? pipeline(source, throttle, res) : pipeline(source, res));
    }
  } catch (error) {
    if (!clientWentAway(res, error)) throw error;
  } finally {
    body.destroy();
  }
}

/**
 * One `bytes=` range (RFC 9110 §14.1.2), clamped to the size. Multiple ranges and malformed
 * headers are ignored (the whole body is sent), as the RFC allows.
 */
export function parseRange(header: string, size: number): ByteRange | 'unsatisfiable' | undefined {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match) return undefined;
  const [, first, last] = match as unknown as [string, string, string];
  if (first === '') {
    if (last === '') return undefined;
    const suffix = Number(last);
    return suffix === 0 || size === 0 ? 'unsatisfiable' : { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  if (last !== '' && Number(last) < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return { start, end: last === '' ? size - 1 : Math.min(Number(last), size - 1) };
}

function rangeApplies(req: Request, etag: string | undefined): boolean {
  if (req.headers.range === undefined) return false;
  const ifRange = req.get('if-range');
  return ifRange === undefined || ifRange.trim() === etag;
}

function ifNoneMatch(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header.split(',').some((tag) => {
    const value = tag.trim();
    return value === '*' || value === etag || value === `W/${etag}`;
  });
}
