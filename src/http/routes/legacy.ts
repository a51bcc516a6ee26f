// The deprecated /_matrix/media/{v3,r0,v1} endpoints (client-server API "Content repository",
// https://spec.matrix.org/v1.16/client-server-api/#content-repository). Download and thumbnail need no
// token, so they serve only media stored before the freeze; config and preview_url need one.
import { Router, type Request, type Response } from 'express';
import { notFound } from '../../matrix/errors.js';
import type { AppServices } from '../services.js';
import type { ClientAuthenticator } from '../auth.js';
import { booleanParam, fileNameParam, mediaPath, thumbnailParams, timeoutMs, type MediaPath } from '../media-params.js';
import { PUBLIC_CACHE } from '../media-response.js';
import { tenantOf } from '../request-tenant.js';
import { methodNotAllowed, previewsUnsupported } from './common.js';
import { mediaConfig } from './media-config.js';
import { isLocal, openRequestedMedia, sendDownload, sendThumbnail, type MediaRequest, type MediaServices } from './serve-media.js';

type LegacyServices = MediaServices & Pick<AppServices, 'config' | 'media' | 'quotas'>;

const VERSIONS = ['v3', 'r0', 'v1'];
const paths = (suffix: string) => VERSIONS.map((v) => `/_matrix/media/${v}/${suffix}`);

const frozen = () => notFound('Not found: this media is only available through the authenticated media endpoints');

export function legacyMediaRoutes(services: LegacyServices, auth: ClientAuthenticator): Router {
  const router = Router();
  const maxTimeoutMs = services.config.media.maxTimeoutMs;

  router.route([...paths('download/:serverName/:mediaId'), ...paths('download/:serverName/:mediaId/:fileName')]).get(async (req, res) => {
    const media = await openUnauthenticated(services, req, res, { target: mediaPath(req), timeoutMs: timeoutMs(req, maxTimeoutMs) });
    await sendDownload(req, res, media, PUBLIC_CACHE, fileNameParam(req));
  }).all(methodNotAllowed);

  router.route(paths('thumbnail/:serverName/:mediaId')).get(async (req, res) => {
    const request = { target: mediaPath(req), thumbnail: thumbnailParams(req), timeoutMs: timeoutMs(req, maxTimeoutMs) };
    await sendThumbnail(req, res, await openUnauthenticated(services, req, res, request), PUBLIC_CACHE);
  }).all(methodNotAllowed);

  router.route(paths('config')).get(async (req, res) => {
    const caller = await auth.authenticate(req, { allowGuests: false });
    res.json(await mediaConfig(services, caller));
  }).all(methodNotAllowed);

  router.route(paths('preview_url')).get(async (req) => {
    await auth.authenticate(req, { allowGuests: false });
    throw previewsUnsupported();
  }).all(methodNotAllowed);

  return router;
}

/**
 * Media stored at or after `media.legacyFreezeAt` answers 404 here. For remote media "stored" is when
 * our cache was filled, so only media cached before the freeze is served and nothing new is fetched.
 */
async function openUnauthenticated(
  services: LegacyServices, req: Request, res: Response, request: Omit<MediaRequest, 'caller'>,
) {
  const freezeAt = services.config.media.legacyFreezeAt?.getTime();
  const local = isLocal(services, request.target.serverName);
  if (!local && !booleanParam(req, 'allow_remote', true)) throw notFound('Remote media not requested (allow_remote=false)');
  if (freezeAt !== undefined) await assertStoredBefore(services, request.target, freezeAt, local);
  const media = await openRequestedMedia(services, res, { ...request, caller: () => tenantOf(req) });
  if (freezeAt !== undefined && (media.storedTs ?? Infinity) >= freezeAt) throw frozen();
  return media;
}

/** Refuses before any waiting or fetching: local media created after the freeze, remote media not cached before it. */
async function assertStoredBefore(services: Pick<AppServices, 'media'>, target: MediaPath, freezeAt: number, local: boolean): Promise<void> {
  const record = await services.media.get(target.serverName, target.mediaId);
  if (local ? record !== undefined && record.createdTs >= freezeAt : record?.storedTs == null || record.storedTs >= freezeAt) throw frozen();
}
