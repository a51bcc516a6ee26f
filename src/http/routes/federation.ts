// Federation media (MSC3916, server-server API "Content Repository"): local media of the addressed
// homeserver, to X-Matrix-authenticated servers, as multipart/mixed with a JSON part and the media part.
import { Router, type Request, type RequestHandler, type Response } from 'express';
import { contentDisposition } from '../../matrix/content-disposition.js';
import { VerifiedRequests } from '../../federation/verified-requests.js';
import { MatrixError } from '../../matrix/errors.js';
import { isValidMediaId } from '../../matrix/mxc.js';
import { generateBoundary, multipartContentType, multipartMixedFrame, multipartMixedStream } from '../../matrix/multipart.js';
import type { ServableMedia } from '../../media/servable.js';
import type { AppServices } from '../services.js';
import { federationAuthenticator, type FederationAuthenticator } from '../federation-auth.js';
import { rateLimitedFederation } from '../limited-auth.js';
import { sendBuffer, sendStream } from '../media-response.js';
import { thumbnailParams, timeoutMs } from '../media-params.js';
import { methodNotAllowed } from './common.js';
import { clientGone } from './serve-media.js';
import { signedLocation } from '../proxy-offload.js';

type FederationServices = Pick<AppServices, 'config' | 'tenants' | 'keyring' | 'localMedia' | 'thumbnails' | 'limits'>;

const PREFIXES = ['/_matrix/federation/v1/media', '/_matrix/federation/unstable/org.matrix.msc3916.v2/media'];

export function federationRouter(services: FederationServices): Router {
  const router = Router();
  const verified = new VerifiedRequests(services.config.federation.verifiedRequestCacheMs);
  const authenticate = rateLimitedFederation(federationAuthenticator(services.keyring, verified), services.limits);
  for (const prefix of PREFIXES) {
    router.route(`${prefix}/download/:mediaId`).get(download(services, authenticate)).all(methodNotAllowed);
    router.route(`${prefix}/thumbnail/:mediaId`).get(thumbnail(services, authenticate)).all(methodNotAllowed);
  }
  return router;
}

function download(services: FederationServices, authenticate: FederationAuthenticator): RequestHandler<{ mediaId: string }> {
  return async (req, res) => {
    const { tenant } = await authenticate(req);
    const mediaId = requireMediaId(req.params.mediaId);
    const wait = { timeoutMs: timeoutMs(req, services.config.media.maxTimeoutMs), cancel: clientGone(res) };
    await sendMultipart(req, res, await services.localMedia.open(tenant.name, mediaId, wait));
  };
}

function thumbnail(services: FederationServices, authenticate: FederationAuthenticator): RequestHandler<{ mediaId: string }> {
  return async (req, res) => {
    const { tenant } = await authenticate(req);
    const mediaId = requireMediaId(req.params.mediaId);
    const spec = thumbnailParams(req);
    const wait = { timeoutMs: timeoutMs(req, services.config.media.maxTimeoutMs), cancel: clientGone(res) };
    await sendMultipart(req, res, await services.thumbnails.open(tenant.name, mediaId, spec, wait));
  };
}

/**
 * Both parts, in one write for small media, else streamed; when the datastore redirects or the proxy
 * offloads, the second part is only a Location. sendStream destroys the body (closes its file) however it ends.
 */
async function sendMultipart(req: Request, res: Response, media: ServableMedia): Promise<void> {
  const disposition = contentDisposition(media.contentType, media.uploadName);
  const location = await media.redirectUrl?.({ contentType: media.contentType, contentDisposition: disposition }) ?? signedLocation(req, media);
  const headers = { 'Content-Type': media.contentType, 'Content-Disposition': disposition };
  const boundary = generateBoundary();
  const contentType = multipartContentType(boundary);
  if (location !== undefined) {
    res.status(200);
    res.setHeader('Content-Type', contentType);
    return sendStream(res, multipartMixedStream(boundary, {}, { location }));
  }
  const frame = multipartMixedFrame(boundary, {}, headers);
  if (media.wholeBody) {
    const bytes = Buffer.concat([frame.head, await media.wholeBody(), frame.tail]);
    res.status(200);
    res.setHeader('Content-Type', contentType);
    res.setHeader('Content-Length', String(bytes.length));
    return sendBuffer(res, bytes);
  }
  const body = await media.open();
  res.status(200);
  res.setHeader('Content-Type', contentType);
  // Known lengths spare the client chunked framing and let it show progress.
  if (media.size !== undefined) res.setHeader('Content-Length', String(frame.head.length + media.size + frame.tail.length));
  await sendStream(res, body, frame);
}

function requireMediaId(mediaId: string): string {
  // An ID off the grammar cannot name any media here.
  if (!isValidMediaId(mediaId)) throw new MatrixError(404, 'M_NOT_FOUND', 'Media not found');
  return mediaId;
}
