// Answers that leave the bytes to the reverse proxy (datastore opts.proxyOffload): the route has already
// authorised the request and set every header but the body's own.
import type { Request, Response } from 'express';
import { isInlineContentType } from '../matrix/content-disposition.js';
import type { ServableMedia } from '../media/servable.js';
import type { OffloadTarget } from '../storage/proxy-offload.js';

/** An empty body and the proxy's header: the proxy sends the file, its length and any Range itself. */
export function endOffloaded(res: Response, target: OffloadTarget): void {
  res.setHeader(target.header, target.value);
  res.end();
}

/** The federation media part's Location: a signed URL on the host the peer asked, or undefined to stream. */
export function signedLocation(req: Request, media: ServableMedia): string | undefined {
  const disposition = isInlineContentType(media.contentType) ? 'inline' : 'attachment';
  const path = media.signedProxyPath?.({ contentType: media.contentType, disposition, fileName: media.uploadName });
  return path === undefined ? undefined : `${req.protocol}://${req.get('host')}${path}`;
}
