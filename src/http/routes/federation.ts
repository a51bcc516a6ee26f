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
import { methodNotAllowed } from './common.js';
import { generateBoundary, multipartContentType, multipartMixedStream, type MediaPart } from '../../matrix/multipart.js';

const PREFIXES = ['/_matrix/federation/v1/media', '/_matrix/federation/unstable/org.matrix.msc3916.v2/media'];

/** The spec's default wait for a pending upload. */
const DEFAULT_TIMEOUT_MS = 20_000;

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
    const media = await openLocalMedia(ctx, tenant.name, mediaId, { timeoutMs: timeoutOf(ctx, req.query), signal: abortOnClose(res) });
    await sendMultipart(ctx, res, media);
  };
}

function thumbnail(ctx: AppContext): RequestHandler<{ mediaId: string }> {
  return async (req, res) => {
    const { tenant } = res.locals.federation as AuthenticatedRequest;
    const mediaId = requireMediaId(req.params.mediaId);
    const query = req.query as Record<string, unknown>;
    const media = await openThumbnail(ctx, tenant.name, mediaId, {
      width: dimension(query, 'width'),
      height: dimension(query, 'height'),
      method: method(query.method),
      animated: animated(query.animated),
      timeoutMs: timeoutOf(ctx, query),
      signal: abortOnClose(res),
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

/** Aborted when the peer goes away first, so waiting for a pending upload stops with it. */
function abortOnClose(res: Response): AbortSignal {
  const controller = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  return controller.signal;
}

function requireMediaId(mediaId: string): string {
  // An ID off the grammar cannot name any media here.
  if (!isValidMediaId(mediaId)) throw new MatrixError(404, 'M_NOT_FOUND', 'Media not found');
  return mediaId;
}

function timeoutOf(ctx: AppContext, query: Record<string, unknown>): number {
  const value = query.timeout_ms;
  if (value === undefined) return Math.min(DEFAULT_TIMEOUT_MS, ctx.config.media.maxTimeoutMs);
  const ms = integerParam(value, 'timeout_ms');
  if (ms < 0) throw new MatrixError(400, 'M_INVALID_PARAM', 'timeout_ms must not be negative');
  return Math.min(ms, ctx.config.media.maxTimeoutMs);
}

function dimension(query: Record<string, unknown>, name: 'width' | 'height'): number {
  if (query[name] === undefined) throw new MatrixError(400, 'M_MISSING_PARAM', `Missing ${name}`);
  const value = integerParam(query[name], name);
  if (value < 1) throw new MatrixError(400, 'M_INVALID_PARAM', `${name} must be positive`);
  return value;
}

function method(value: unknown): 'crop' | 'scale' {
  if (value === undefined) return 'scale';
  if (value === 'crop' || value === 'scale') return value;
  throw new MatrixError(400, 'M_INVALID_PARAM', 'method must be crop or scale');
}

function animated(value: unknown): boolean {
  if (value === undefined || value === 'false') return false;
  if (value === 'true') return true;
  throw new MatrixError(400, 'M_INVALID_PARAM', 'animated must be true or false');
}

function integerParam(value: unknown, name: string): number {
  if (typeof value !== 'string' || !/^-?[0-9]{1,15}$/.test(value)) throw new MatrixError(400, 'M_INVALID_PARAM', `${name} must be an integer`);
  return Number(value);
}
