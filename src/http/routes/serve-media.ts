// Download and thumbnail requests, shared by the authenticated and the legacy endpoints: local media
// of a hosted homeserver comes from media/download and media/thumbnail, anything else from media/remote.
import type { Request, Response } from 'express';
import type { HomeserverConfig } from '../../config/config.js';
import { contentDisposition } from '../../matrix/content-disposition.js';
import type { ThumbnailSpec } from '../../matrix/thumbnail-spec.js';
import { thumbnailFileName, type ServableMedia } from '../../media/servable.js';
import type { AppServices } from '../services.js';
import { PRIVATE_CACHE, sendMedia } from '../media-response.js';
import type { MediaPath } from '../media-params.js';

export type MediaServices = Pick<AppServices, 'tenants' | 'localMedia' | 'thumbnails' | 'remoteMedia'>;

export interface MediaRequest {
  target: MediaPath;
  thumbnail?: ThumbnailSpec;
  timeoutMs: number;
  /** The hosted homeserver on whose behalf remote media is fetched. */
  caller: () => HomeserverConfig;
}

export function isLocal(services: Pick<AppServices, 'tenants'>, serverName: string): boolean {
  return services.tenants.byName(serverName) !== undefined;
}

export async function openRequestedMedia(services: MediaServices, res: Response, request: MediaRequest): Promise<ServableMedia> {
  const { serverName, mediaId } = request.target;
  const wait = { timeoutMs: request.timeoutMs, cancel: clientGone(res) };
  if (isLocal(services, serverName)) {
    return request.thumbnail
      ? services.thumbnails.open(serverName, mediaId, request.thumbnail, wait)
      : services.localMedia.open(serverName, mediaId, wait);
  }
  return services.remoteMedia.open(request.caller(), serverName, mediaId, { thumbnail: request.thumbnail, timeoutMs: request.timeoutMs });
}

/** Sends a download; `fileName` from the path overrides the uploaded name. */
export function sendDownload(req: Request, res: Response, media: ServableMedia, cacheControl: string, fileName?: string): Promise<void> {
  return sendMedia(req, res, media, { disposition: contentDisposition(media.contentType, fileName ?? media.uploadName), cacheControl, redirect: redirectFor(cacheControl) });
}

/**
 * Thumbnails are inline (spec v1.12) because their types are all on the inline allow-list; the same rule as
 * downloads keeps anything else an attachment. Without a name (a remote gave none), the spec's example one.
 */
export function sendThumbnail(req: Request, res: Response, media: ServableMedia, cacheControl: string): Promise<void> {
  const disposition = contentDisposition(media.contentType, media.uploadName ?? thumbnailFileName(media.contentType));
  return sendMedia(req, res, media, { disposition, cacheControl, redirect: redirectFor(cacheControl) });
}

/** Authenticated media is private-cached; the public (legacy, unauthenticated) endpoints redirect only without Range. */
function redirectFor(cacheControl: string): 'always' | 'withoutRange' {
  return cacheControl === PRIVATE_CACHE ? 'always' : 'withoutRange';
}

/**
 * A signal aborted when the client disconnects before the response is complete (stops waits for pending
 * uploads); made on first use, since most requests never wait.
 */
export function clientGone(res: Response): () => AbortSignal {
  let signal: AbortSignal | undefined;
  return () => {
    if (signal) return signal;
    const controller = new AbortController();
    const abortUnlessFinished = () => {
      if (!res.writableFinished) controller.abort();
    };
    if (res.closed || res.destroyed) abortUnlessFinished();
    else res.once('close', abortUnlessFinished);
    return (signal = controller.signal);
  };
}
