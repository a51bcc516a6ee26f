// Download and thumbnail requests, shared by the authenticated and the legacy endpoints: local media
// of a hosted homeserver comes from media/download and media/thumbnail, anything else from media/remote.
import type { Request, Response } from 'express';
import type { HomeserverConfig } from '../../config/config.js';
import type { AppContext } from '../../context.js';
import { formatDisposition, contentDisposition } from '../../media/content-disposition.js';
import { openLocalMedia } from '../../media/download.js';
import { openThumbnail } from '../../media/thumbnail.js';
import { sendMedia, type ServableMedia } from '../media-response.js';
import type { MediaPath, ThumbnailParams } from '../media-params.js';

export interface MediaRequest {
  target: MediaPath;
  thumbnail?: ThumbnailParams;
  timeoutMs: number;
  /** The hosted homeserver on whose behalf remote media is fetched. */
  caller: () => HomeserverConfig;
}

export function isLocal(ctx: AppContext, serverName: string): boolean {
  return ctx.tenants.byName(serverName) !== undefined;
}

export async function openRequestedMedia(ctx: AppContext, res: Response, request: MediaRequest): Promise<ServableMedia> {
  const { serverName, mediaId } = request.target;
  const wait = { timeoutMs: request.timeoutMs, signal: clientGone(res) };
  if (isLocal(ctx, serverName)) {
    return request.thumbnail
      ? openThumbnail(ctx, serverName, mediaId, { ...request.thumbnail, ...wait })
      : openLocalMedia(ctx, serverName, mediaId, wait);
  }
  return ctx.remoteMedia.open(request.caller(), serverName, mediaId, { thumbnail: request.thumbnail, timeoutMs: request.timeoutMs });
}

/** Sends a download; `fileName` from the path overrides the uploaded name. */
export function sendDownload(req: Request, res: Response, media: ServableMedia, cacheControl: string, fileName?: string): Promise<void> {
  return sendMedia(req, res, media, { disposition: contentDisposition(media.contentType, fileName ?? media.uploadName), cacheControl });
}

/** Thumbnails are always inline (spec v1.12): their types are all on the inline allow-list. */
export function sendThumbnail(req: Request, res: Response, media: ServableMedia, cacheControl: string): Promise<void> {
  return sendMedia(req, res, media, { disposition: formatDisposition('inline', media.uploadName), cacheControl });
}

/** Aborted when the client disconnects before the response is complete: stops waits for pending uploads. */
export function clientGone(res: Response): AbortSignal {
  const controller = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  return controller.signal;
}
