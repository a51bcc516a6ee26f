// Federation media (MSC3916, server-server API "Content Repository"): local media of the addressed
// homeserver, to X-Matrix-authenticated servers, as multipart/mixed with a JSON part and the media part.
import { pipeline } from 'node:stream/promises';
import { Router, type RequestHandler, type Response } from 'express';
import type { AppContext } from '../../context.js';
import { requireFederationAuth, type AuthenticatedRequest } from '../../federation/inbound-auth.js';
import { contentDisposition } from '../../media/content-disposition.js';
import { openLocalMedia, type OpenedMedia } from '../../media/download.js';
import { openThumbnail } from '../../media/thumbnail.js';
import { MatrixError } from '../../matrix/errors.js';
import { isValidMediaId } from '../../matrix/mxc.js';
import { generateBoundary, multipartContentType, multipartMixedStream, type MediaPart } from '../../matrix/multipart.js';
import { thumbnailParams, timeoutMs } from '../media-params.js';
import { methodNotAllowed } from './common.js';
import { clientGone } from './serve-media.js';

const PREFIXES = ['/_matrix/federation/v1/media', '/_matrix/federation/unstable/org.matrix.msc3916.v2/media'];

export function federationRouter(ctx: AppContext): Router {
  const router = Router();
  const auth = requireFederationAuth(ctx);
  for (const prefix of PREFIXES) {
    router.route(`${prefix}/download/:mediaId`).get(auth, download(ctx)).all(methodNotAllowed);
    router.route(`${prefix}/thumbnail/:mediaId`).get(auth, thumbnail(ctx)).all(methodNotAllowed);
  }
  return router;
}

function download(ctx: AppContext): RequestHandler<{ mediaId: string }> {
  return async (req, res) => {
    const { tenant } = res.locals.federation as AuthenticatedRequest;
    const mediaId = requireMediaId(req.params.mediaId);
    const media = await openLocalMedia(ctx, tenant.name, mediaId, { timeoutMs: timeoutMs(req, ctx.config.media.maxTimeoutMs), signal: clientGone(res) });
    await sendMultipart(ctx, res, media);
  };
}

function thumbnail(ctx: AppContext): RequestHandler<{ mediaId: string }> {
  return async (req, res) => {
    const { tenant } = res.locals.federation as AuthenticatedRequest;
    const mediaId = requireMediaId(req.params.mediaId);
    const media = await openThumbnail(ctx, tenant.name, mediaId, {
      ...thumbnailParams(req),
      timeoutMs: timeoutMs(req, ctx.config.media.maxTimeoutMs),
      signal: clientGone(res),
    });
    await sendMultipart(ctx, res, media);
  };
}

/** Both parts streamed; when the datastore redirects, the second part is only a Location. */
async function sendMultipart(ctx: AppContext, res: Response, media: OpenedMedia): Promise<void> {
  const location = await ctx.media.storage.redirectUrl?.(media.sha256);
  const part: MediaPart = location !== undefined
    ? { location }
    : {
        headers: { 'Content-Type': media.contentType, 'Content-Disposition': contentDisposition(media.contentType, media.uploadName) },
        body: await media.open(),
      };
  const boundary = generateBoundary();
  res.status(200);
  res.setHeader('Content-Type', multipartContentType(boundary));
  await pipeline(multipartMixedStream(boundary, {}, part), res);
}

function requireMediaId(mediaId: string): string {
  // An ID off the grammar cannot name any media here.
  if (!isValidMediaId(mediaId)) throw new MatrixError(404, 'M_NOT_FOUND', 'Media not found');
  return mediaId;
}
