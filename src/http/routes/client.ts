// The client media API: authenticated media (/_matrix/client/v1/media/*, spec v1.11), uploads
// (/_matrix/media/*/upload, /_matrix/media/v1/create), and the legacy endpoints from ./legacy.
import { Router, type Request, type RequestHandler, type Response } from 'express';
import { notFound } from '../../matrix/errors.js';
import type { UploadInput } from '../../media/uploads.js';
import type { AppServices } from '../services.js';
import type { ClientAuthenticator } from '../auth.js';
import { RateLimitedAuthenticator } from '../limited-auth.js';
import { contentLength, fileNameParam, mediaPath, thumbnailParams, timeoutMs, uploadContentType, uploadName } from '../media-params.js';
import { PRIVATE_CACHE } from '../media-response.js';
import { cors, methodNotAllowed, previewsUnsupported } from './common.js';
import { legacyMediaRoutes } from './legacy.js';
import { mediaConfig, mediaUsage, MSC4034_USAGE } from './media-config.js';
import { openRequestedMedia, sendDownload, sendThumbnail } from './serve-media.js';

const V1 = '/_matrix/client/v1/media';
// r0 and v1 are older names of the same upload endpoints that clients still use.
const UPLOAD_VERSIONS = ['v3', 'r0', 'v1'];

type ClientServices = Omit<AppServices, 'keyring' | 'db'>;

/** Every client-facing media route, sharing one access-token cache. */
export function clientMediaApi(services: ClientServices): Router {
  const router = Router();
  const auth = new RateLimitedAuthenticator(
    services.limits, services.config.auth, services.log, services.staticTokens, services.tokenCacheLookups,
  );
  router.use(['/_matrix/client', '/_matrix/media'], cors);
  router.use(authenticatedMediaRoutes(services, auth));
  router.use(uploadRoutes(services, auth));
  router.use(legacyMediaRoutes(services, auth));
  return router;
}

function authenticatedMediaRoutes(services: ClientServices, auth: ClientAuthenticator): Router {
  const router = Router();
  const maxTimeoutMs = services.config.media.maxTimeoutMs;

  router.route(`${V1}/config`).get(async (req, res) => {
    const caller = await auth.authenticate(req, { allowGuests: false });
    res.json(await mediaConfig(services, caller));
  }).all(methodNotAllowed);

  // MSC4034 (media limits), in its unstable form until it is merged.
  router.route(MSC4034_USAGE).get(async (req, res) => {
    const caller = await auth.authenticate(req, { allowGuests: false });
    res.json(await mediaUsage(services, caller));
  }).all(methodNotAllowed);

  router.route([`${V1}/download/:serverName/:mediaId`, `${V1}/download/:serverName/:mediaId/:fileName`]).get(async (req, res) => {
    const target = mediaPath(req);
    const caller = await auth.authenticate(req, { allowGuests: true });
    const media = await openRequestedMedia(services, res, { target, timeoutMs: timeoutMs(req, maxTimeoutMs), caller: () => caller.tenant });
    await sendDownload(req, res, media, PRIVATE_CACHE, fileNameParam(req));
  }).all(methodNotAllowed);

  router.route(`${V1}/thumbnail/:serverName/:mediaId`).get(async (req, res) => {
    const target = mediaPath(req);
    const thumbnail = thumbnailParams(req);
    const caller = await auth.authenticate(req, { allowGuests: true });
    const media = await openRequestedMedia(services, res, { target, thumbnail, timeoutMs: timeoutMs(req, maxTimeoutMs), caller: () => caller.tenant });
    await sendThumbnail(req, res, media, PRIVATE_CACHE);
  }).all(methodNotAllowed);

  router.route(`${V1}/preview_url`).get(async (req) => {
    await auth.authenticate(req, { allowGuests: false });
    throw previewsUnsupported();
  }).all(methodNotAllowed);

  return router;
}

function uploadRoutes(services: ClientServices, auth: ClientAuthenticator): Router {
  const router = Router();

  router.route(UPLOAD_VERSIONS.map((v) => `/_matrix/media/${v}/upload`)).post(uploadHandler(async (req, res) => {
    const caller = await auth.authenticate(req, { allowGuests: false });
    res.json({ content_uri: await services.uploads.upload(caller.tenant, caller.userId, uploadInput(req)) });
  })).all(methodNotAllowed);

  router.route('/_matrix/media/v1/create').post(async (req, res) => {
    const caller = await auth.authenticate(req, { allowGuests: false });
    res.json(await services.uploads.createPending(caller.tenant, caller.userId));
  }).all(methodNotAllowed);

  router.route(UPLOAD_VERSIONS.map((v) => `/_matrix/media/${v}/upload/:serverName/:mediaId`)).put(uploadHandler(async (req, res) => {
    const { serverName, mediaId } = mediaPath(req);
    const caller = await auth.authenticate(req, { allowGuests: false });
    const owner = services.tenants.byName(serverName);
    if (!owner) throw notFound('Unknown media ID');
    await services.uploads.uploadToPending(owner, caller.userId, mediaId, uploadInput(req));
    res.json({});
  })).all(methodNotAllowed);

  return router;
}

function uploadInput(req: Request): UploadInput {
  return { body: req, contentType: uploadContentType(req), uploadName: uploadName(req), contentLength: contentLength(req) };
}

/**
 * An upload that fails before its body is read closes the connection after the error: otherwise the
 * server would go on reading (and discarding) a body it already refused. A client that went away
 * mid-upload gets no answer, and is no server error.
 */
function uploadHandler(handler: (req: Request, res: Response) => Promise<void>): RequestHandler {
  return async (req, res) => {
    try {
      await handler(req, res);
    } catch (error) {
      if (req.complete) throw error;
      if (req.destroyed) return;
      res.setHeader('Connection', 'close');
      throw error;
    }
  };
}
