// Local media for downloads: look the ID up, wait for a pending async upload, hand back a way to read it.
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AppContext } from '../context.js';
import { MatrixError, notFound } from '../matrix/errors.js';
import type { ByteRange } from '../storage/datastore.js';
import type { MediaRecord, MediaStore } from './media-store.js';

export { contentDisposition } from './content-disposition.js';

export const DEFAULT_CONTENT_TYPE = 'application/octet-stream';

/** Media (or a thumbnail) ready to be served, local or remote. */
export interface OpenedMedia {
  contentType: string;
  uploadName: string | null;
  size: number;
  sha256: string;
  /** When the bytes were stored here (upload, or remote cache populated): the legacy freeze compares it. */
  storedTs?: number;
  open(range?: ByteRange): Promise<Readable>;
}

export interface WaitOptions {
  /** How long to wait for a pending async upload; already capped by the caller. */
  timeoutMs: number;
  /** Stops waiting when the client goes away. */
  signal?: AbortSignal;
}

/** A media record whose bytes have arrived. */
export type StoredMedia = MediaRecord & { sha256: string; size: number; storedTs: number };

const notYetUploaded = () => new MatrixError(504, 'M_NOT_YET_UPLOADED', 'Content has not yet been uploaded');

// Polling, not LISTEN/NOTIFY: the embedded database has a single connection to share.
const FIRST_POLL_MS = 50;
const MAX_POLL_MS = 1000;

export async function openLocalMedia(ctx: AppContext, serverName: string, mediaId: string, options: WaitOptions): Promise<OpenedMedia> {
  const media = await waitForLocalMedia(ctx.media, serverName, mediaId, options);
  return {
    contentType: media.contentType ?? DEFAULT_CONTENT_TYPE,
    uploadName: media.uploadName,
    size: media.size,
    sha256: media.sha256,
    storedTs: media.storedTs,
    open: (range) => ctx.media.storage.read(media.sha256, range),
  };
}

/** The local media's record once its bytes are there: 404 if unknown or expired, 504 if still pending at the deadline. */
export async function waitForLocalMedia(store: MediaStore, serverName: string, mediaId: string, options: WaitOptions): Promise<StoredMedia> {
  const deadline = Date.now() + options.timeoutMs;
  for (let delay = FIRST_POLL_MS; ; delay = Math.min(delay * 2, MAX_POLL_MS)) {
    const media = await store.get(serverName, mediaId);
    if (!media || media.isRemote) throw notFound('Media not found');
    if (isStored(media)) return media;
    const now = Date.now();
    if (media.expiresTs !== null && media.expiresTs <= now) throw notFound('Media not found');
    if (now >= deadline) throw notYetUploaded();
    // Aborted: the client left, and nobody reads the answer.
    await sleep(Math.min(delay, deadline - now), undefined, { signal: options.signal }).catch(() => { throw notYetUploaded(); });
  }
}

function isStored(media: MediaRecord): media is StoredMedia {
  return media.sha256 !== null && media.size !== null && media.storedTs !== null;
}
