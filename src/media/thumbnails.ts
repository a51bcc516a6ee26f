// Thumbnails: the original itself where it is no larger than asked, else the size chosen for the request
// (thumbnail-choice), generated once with sharp and stored.
import { availableParallelism } from 'node:os';
import { Readable } from 'node:stream';
import type { ThumbnailsConfig, ThumbnailSize } from '../config/config.js';
import { mediaTypeEssence } from '../matrix/content-disposition.js';
import { MatrixError } from '../matrix/errors.js';
import type { ThumbnailSpec } from '../matrix/thumbnail-spec.js';
import type { Datastores } from '../storage/datastores.js';
import { LruCache } from '../lru-cache.js';
import type { LocalMedia, StoredMedia, WaitOptions } from './local-media.js';
import type { MediaStore, ThumbnailKey, ThumbnailRecord } from './media-store.js';
import { servableBlob, thumbnailFileName, type ServableMedia } from './servable.js';
import { AbandonedError, Semaphore, SingleFlight } from './single-flight.js';
import { chooseThumbnailSize, dynamicSize, originalIsNoLarger } from './thumbnail-choice.js';
import { cannotThumbnail, probeImage, readAll, renderThumbnail, THUMBNAIL_TYPES, tooLargeToThumbnail, type ImageInfo } from './thumbnail-render.js';

export { chooseThumbnailSize } from './thumbnail-choice.js';

const CACHE_SIZE = 10_000;

export class Thumbnails {
  private readonly flights = new SingleFlight<ThumbnailRecord>();
  private readonly probes = new SingleFlight<ImageInfo>();
  private readonly slots = new Semaphore(availableParallelism());
  /** A media ID's bytes never change, so a thumbnail that could not be made never can: not re-read, not re-decoded. */
  private readonly failures = new LruCache<string, MatrixError>(CACHE_SIZE);
  /** Each source's size and format, read once: every request needs them to choose. */
  private readonly images = new LruCache<string, ImageInfo>(CACHE_SIZE);

  constructor(
    private readonly media: MediaStore,
    private readonly localMedia: LocalMedia,
    private readonly datastores: Datastores,
    private readonly settings: ThumbnailsConfig,
  ) {}

  async open(serverName: string, mediaId: string, spec: ThumbnailSpec, wait: WaitOptions): Promise<ServableMedia> {
    const source = await this.localMedia.waitFor(serverName, mediaId, wait);
    // A render still queued when every client asking for it has gone is dropped: under load the queue
    // would otherwise fill with work nobody waits for, and starve the clients still there.
    const left = () => (this.slots.full ? wait.cancel?.() : undefined);
    const image = await this.probe(source, left).catch(abandoned);
    const animated = spec.animated && this.settings.animated;
    const original = THUMBNAIL_TYPES[image.format];
    // Spec: "When the content is smaller than the requested dimensions, servers SHOULD return the original content".
    if (original && originalIsNoLarger(image, spec) && (animated || !image.animated)) {
      const blob = { ...source, contentType: original, uploadName: thumbnailFileName(original) };
      return servableBlob(blob, this.datastores.get(source.datastoreId));
    }
    const size = await this.chooseSize(serverName, mediaId, spec, image);
    const key: ThumbnailKey = { serverName, mediaId, ...size, animated };
    const thumbnail = (await this.media.getThumbnail(key)) ?? (await this.generateOnce(key, source, left).catch(abandoned));
    const blob = { ...thumbnail, uploadName: thumbnailFileName(thumbnail.contentType), storedTs: source.storedTs };
    return servableBlob(blob, this.datastores.get(thumbnail.datastoreId));
  }

  /** The exact size asked when dynamic sizing allows it and the media has room for one more size; else the configured choice. */
  private async chooseSize(serverName: string, mediaId: string, spec: ThumbnailSpec, image: ImageInfo): Promise<ThumbnailSize> {
    const chosen = chooseThumbnailSize(this.settings.sizes, spec, image);
    const exact = this.settings.dynamicSizing ? dynamicSize(this.settings.sizes, spec) : undefined;
    if (!exact || (exact.width === chosen.width && exact.height === chosen.height && exact.method === chosen.method)) return chosen;
    const key = { serverName, mediaId, ...exact, animated: spec.animated && this.settings.animated };
    if (await this.media.getThumbnail(key)) return exact;
    return (await this.media.countThumbnails(serverName, mediaId)) < this.settings.maxSizesPerMedia ? exact : chosen;
  }

  private probe(source: StoredMedia, left: () => AbortSignal | undefined): Promise<ImageInfo> {
    const id = JSON.stringify([source.serverName, source.mediaId]);
    const known = this.images.get(id);
    if (known) return Promise.resolve(known);
    const failed = this.failures.get(id);
    if (failed) return Promise.reject(failed);
    return this.probes.run(id, (abandoned) => this.slots.run(async () => {
      const image = await this.read(source).then((input) => probeImage(this.settings, input)).catch((error: unknown) => this.remember(id, error));
      this.images.set(id, image);
      return image;
    }, abandoned), left());
  }

  private generateOnce(key: ThumbnailKey, source: StoredMedia, left: () => AbortSignal | undefined): Promise<ThumbnailRecord> {
    const id = JSON.stringify([key.serverName, key.mediaId, key.width, key.height, key.method, key.animated]);
    const failed = this.failures.get(id);
    if (failed) return Promise.reject(failed);
    return this.flights.run(id, (abandoned) => this.slots.run(async () => {
      // Another instance (or an earlier flight) may have stored it since we looked.
      const stored = await this.media.getThumbnail(key);
      if (stored) return stored;
      const { data, contentType } = await this.read(source).then((input) => renderThumbnail(this.settings, key, input))
        .catch((error: unknown) => this.remember(id, error));
      const blob = await this.datastores.forKind('thumbnails', key.serverName).writeStream(Readable.from([data]), { maxBytes: data.length });
      return this.media.insertThumbnail(key, contentType, blob);
    }, abandoned), left());
  }

  /** Only declared images are read at all: anything else costs nothing to refuse. */
  private async read(source: StoredMedia): Promise<Buffer> {
    if (!mediaTypeEssence(source.contentType ?? '').startsWith('image/')) throw cannotThumbnail();
    if (source.size > this.settings.maxSourceBytes) throw tooLargeToThumbnail();
    // sharp buffers any non-file input whole; reading it ourselves (bounded above) lets us open it twice.
    return readAll(await this.datastores.get(source.datastoreId).read(source.sha256), this.settings.maxSourceBytes);
  }

  /** Only the content's own verdicts (400, 413) are final; I/O trouble may pass. */
  private remember(id: string, error: unknown): never {
    if (error instanceof MatrixError && error.status < 500) this.failures.set(id, error);
    throw error;
  }
}

/** Nobody is left to tell, but the request still ends as a Matrix error rather than an unexpected one. */
function abandoned(error: unknown): never {
  if (error instanceof AbandonedError) throw new MatrixError(503, 'M_UNKNOWN', 'The thumbnail was not made: its clients went away first');
  throw error;
}
