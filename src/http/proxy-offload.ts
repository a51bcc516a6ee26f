// Answers that leave the bytes to the reverse proxy (datastore opts.proxyOffload): the route has already
// authorised the request and set every header but the body's own.
import type { Request, Response } from 'express';
import { isInlineContentType } from '../matrix/content-disposition.js';
import type { ServableMedia } from '../media/servable.js';
import type { OffloadTarget } from '../storage/proxy-offload.js';

/**
 * `target` when the proxy in front said it sends files named by that header: it sets the request header
 * `X-Sendfile-Type` to it (Rack::Sendfile's convention). Reached any other way (directly, or through a
 * proxy without the snippet) the service sends the bytes itself instead of an empty body.
 */
export function announcedTarget(req: Request, target: OffloadTarget | undefined): OffloadTarget | undefined {
  return target && proxyAnnounces(req, target.header) ? target : undefined;
}

function proxyAnnounces(req: Request, header: OffloadTarget['header']): boolean {
  return req.get('x-sendfile-type')?.trim().toLowerCase() === header.toLowerCase();
}

/** An empty body and the proxy's header: the proxy sends the file, its length and any Range itself. */
export function endOffloaded(res: Response, target: OffloadTarget): void {
  res.setHeader(target.header, target.value);
  res.end();
}

/** The federation media part's Location: a signed URL on the host the peer asked, or undefined to stream. */
export function signedLocation(req: Request, media: ServableMedia): string | undefined {
  if (!proxyAnnounces(req, 'X-Accel-Redirect')) return undefined; // only nginx checks secure_link links
  const disposition = isInlineContentType(media.contentType) ? 'inline' : 'attachment';
  const path = media.signedProxyPath?.({ contentType: media.contentType, disposition, fileName: media.uploadName });
  return path === undefined ? undefined : `${req.protocol}://${req.get('host')}${path}`;
}
