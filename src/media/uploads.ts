// Uploads: direct (POST /upload) and async (POST /create, then PUT /upload/{serverName}/{mediaId}).
// Bytes are hashed while streamed to storage; the row appears only once they are committed.
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { HomeserverConfig } from '../config/config.js';
import { forbidden, MatrixError, notFound } from '../matrix/errors.js';
import { formatMxc } from '../matrix/mxc.js';
import { SizeLimitError, type StagedBlob } from '../storage/datastore.js';
import type { Datastores } from '../storage/datastores.js';
import type { MediaStore, StoreGuard } from './media-store.js';
import type { Quotas } from './quotas.js';

export interface UploadInput {
  body: Readable;
  contentType: string;
  uploadName: string | null;
  /** The declared length, checked before a byte is read; the stream is checked as it flows too. */
  contentLength?: number;
}

export interface UploadSettings {
  pendingUploadExpiryMs: number;
  maxPendingUploadsPerUser: number;
}

/** The homeserver an upload is for: where it is stored, its size limit and quotas. */
export type UploadTenant = Pick<HomeserverConfig, 'name' | 'maxUploadBytes' | 'quotas'>;

const cannotOverwrite = () => new MatrixError(409, 'M_CANNOT_OVERWRITE_MEDIA', 'Media already uploaded');
const unknownMediaId = () => notFound('Unknown media ID');

export class Uploads {
  constructor(
    private readonly media: MediaStore, private readonly datastores: Datastores, private readonly settings: UploadSettings, private readonly quotas: Quotas,
    /** Told about every stored upload (metrics). */
    private readonly onStored: (homeserver: string, bytes: number) => void = () => {},
  ) {}

  /** Stores an upload under a new media ID of `tenant`; returns its mxc URI. */
  async upload(tenant: UploadTenant, userId: string, input: UploadInput): Promise<string> {
    const blob = await this.receive(tenant, userId, input);
    const mediaId = newMediaId();
    const media = { serverName: tenant.name, mediaId, isRemote: false, userId, contentType: input.contentType, uploadName: input.uploadName };
    if (!(await this.media.insertMedia(media, blob, Date.now(), this.quotaGuard(tenant, userId, blob)))) throw new Error('a freshly generated media ID was already taken');
    this.onStored(tenant.name, blob.size);
    return formatMxc(tenant.name, mediaId);
  }

  /** Reserves a media ID for a later PUT (spec v1.7), within the per-user limit of pending ones. */
  async createPending(tenant: UploadTenant, userId: string, now = Date.now()): Promise<{ content_uri: string; unused_expires_at: number }> {
    const mediaId = newMediaId();
    const expiresTs = now + this.settings.pendingUploadExpiryMs;
    const outcome = await this.media.createPending(tenant.name, mediaId, userId, { expiresTs, maxPending: this.quotas.userLimits(tenant, userId).maxPending ?? this.settings.maxPendingUploadsPerUser }, now);
    if (!outcome.created) {
      throw new MatrixError(429, 'M_LIMIT_EXCEEDED', 'Too many pending uploads: finish or wait for one to expire', {
        retry_after_ms: outcome.retryAfterMs,
      });
    }
    return { content_uri: formatMxc(tenant.name, mediaId), unused_expires_at: expiresTs };
  }

  /** Fills a media ID reserved by `userId` with /create. Two racing PUTs: the first to finish wins, the other gets 409. */
  async uploadToPending(tenant: UploadTenant, userId: string, mediaId: string, input: UploadInput): Promise<void> {
    const media = await this.media.get(tenant.name, mediaId);
    if (!media || media.isRemote) throw unknownMediaId();
    if (media.userId !== userId) throw forbidden('This media ID was created by another user');
    if (media.sha256 !== null) throw cannotOverwrite();
    if (media.expiresTs !== null && media.expiresTs <= Date.now()) throw unknownMediaId();
    const blob = await this.receive(tenant, userId, input);
    const content = { contentType: input.contentType, uploadName: input.uploadName };
    if (await this.media.completePending(tenant.name, mediaId, content, blob, Date.now(), this.quotaGuard(tenant, userId, blob))) {
      this.onStored(tenant.name, blob.size);
      return;
    }
    const now = await this.media.get(tenant.name, mediaId);
    throw now?.sha256 ? cannotOverwrite() : unknownMediaId();
  }

  /** Refuses early what is already over a quota; a stream past the quota's remaining bytes is cut with the quota's error. */
  private async receive(tenant: UploadTenant, userId: string, input: UploadInput): Promise<StagedBlob> {
    const maxBytes = tenant.maxUploadBytes;
    if (input.contentLength !== undefined && input.contentLength > maxBytes) throw new SizeLimitError(maxBytes);
    const quota = await this.quotas.admit(tenant, userId, input.contentLength);
    const limits = quota && quota.maxBytes < maxBytes ? quota : { maxBytes };
    return this.datastores.forKind('local_media', tenant.name).writeStream(input.body, limits);
  }

  /** The authoritative check, serialised with every other upload it competes with (this user's, or the homeserver's). */
  private quotaGuard(tenant: UploadTenant, userId: string, blob: StagedBlob) {
    return (trx: Parameters<StoreGuard>[0]) => this.quotas.check(trx, tenant, userId, blob.size);
  }
}

/** 144 random bits in the mxc media ID alphabet ([A-Za-z0-9_-]). */
function newMediaId(): string {
  return randomBytes(18).toString('base64url');
}
