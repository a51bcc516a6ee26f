// Local media for downloads: look the ID up, wait for a pending async upload, hand back a way to read it.
import { notFound, notYetUploaded } from '../matrix/errors.js';
import type { Datastores } from '../storage/datastores.js';
import type { MediaRecord, MediaStore } from './media-store.js';
import { pollUntil } from './poll.js';
import { servableBlob, type ServableMedia } from './servable.js';

export interface WaitOptions {
  /** How long to wait for a pending async upload; already capped by the caller. */
  timeoutMs: number;
  /** Stops waiting when the client goes away; made only if the wait must sleep. */
  cancel?: () => AbortSignal;
}

/** A media record whose bytes have arrived. */
export type StoredMedia = MediaRecord & { sha256: string; datastoreId: string; size: number; storedTs: number };

export class LocalMedia {
  constructor(
    private readonly media: MediaStore,
    private readonly datastores: Datastores,
    /** Told of every lookup of stored media (access times, batched). */
    private readonly accessed: (serverName: string, mediaId: string) => void = () => undefined,
  ) {}

  async open(serverName: string, mediaId: string, wait: WaitOptions): Promise<ServableMedia> {
    const media = await this.waitFor(serverName, mediaId, wait);
    return servableBlob(media, this.datastores.get(media.datastoreId));
  }

  /** The local media's record once its bytes are there: 404 if unknown or expired, 504 if still pending at the deadline. */
  waitFor(serverName: string, mediaId: string, wait: WaitOptions): Promise<StoredMedia> {
    return pollUntil(async () => {
      const media = await this.media.get(serverName, mediaId);
      if (!media || media.isRemote || media.quarantined) throw notFound('Media not found');
      if (isStored(media)) {
        this.accessed(serverName, mediaId);
        return media;
      }
      if (media.expiresTs !== null && media.expiresTs <= Date.now()) throw notFound('Media not found');
      return undefined;
    }, { deadline: Date.now() + wait.timeoutMs, cancel: wait.cancel, timedOut: () => notYetUploaded() });
  }
}

function isStored(media: MediaRecord): media is StoredMedia {
  return media.sha256 !== null && media.datastoreId !== null && media.size !== null && media.storedTs !== null;
}
