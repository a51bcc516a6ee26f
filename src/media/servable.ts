// Media (or a thumbnail) ready to be served, local or remote: the one shape every route sends.
import type { Readable } from 'node:stream';
import { notFound } from '../matrix/errors.js';
import type { ByteRange, Datastore, RedirectHeaders } from '../storage/datastore.js';
import type { OffloadTarget, SignedHeaders } from '../storage/proxy-offload.js';

export const DEFAULT_CONTENT_TYPE = 'application/octet-stream';

const EXTENSIONS: Record<string, string> = { 'image/jpeg': 'jpg', 'image/png': 'png', 'image/apng': 'png', 'image/webp': 'webp', 'image/gif': 'gif' };

/** The spec's example name for a thumbnail ("thumbnail.png"), by its type. */
export const thumbnailFileName = (contentType: string) => `thumbnail.${EXTENSIONS[contentType] ?? 'bin'}`;

export interface ServableMedia {
  contentType: string;
  uploadName: string | null;
  /** Undefined while remote media is still streaming in from its origin: no Content-Length, and no Range. */
  size: number | undefined;
  sha256: string | undefined;
  /** When the bytes were stored here (upload, or remote cache populated): the legacy freeze compares it. */
  storedTs?: number;
  open(range?: ByteRange): Promise<Readable>;
  /** The whole body in one buffer, offered only for small stored blobs: one write answers them. */
  wholeBody?(): Promise<Buffer>;
  /** A URL to send the client to instead of the bytes, where the datastore offers one. */
  redirectUrl?(headers?: RedirectHeaders): Promise<string | undefined>;
  /** The header that hands the bytes to the reverse proxy, where the datastore offloads them. */
  proxyTarget?(): OffloadTarget | undefined;
  /** A signed path the reverse proxy serves without authentication until it expires (federation). */
  signedProxyPath?(headers: SignedHeaders): string | undefined;
}

export interface StoredBlob {
  contentType: string | null;
  uploadName: string | null;
  sha256: string;
  size: number;
  storedTs?: number;
}

/** Stored bytes, served from the datastore that holds them. */
export function servableBlob(blob: StoredBlob, datastore: Datastore): ServableMedia {
  const small = datastore.readWhole !== undefined && blob.size <= (datastore.wholeReadLimit ?? 0);
  return {
    contentType: blob.contentType ?? DEFAULT_CONTENT_TYPE,
    uploadName: blob.uploadName,
    size: blob.size,
    sha256: blob.sha256,
    storedTs: blob.storedTs,
    open: (range) => datastore.read(blob.sha256, range).catch(goneIsNotFound),
    ...(small ? { wholeBody: () => datastore.readWhole!(blob.sha256, blob.size).catch(goneIsNotFound) } : {}),
    ...(datastore.redirectUrl ? { redirectUrl: (headers?: RedirectHeaders) => datastore.redirectUrl!(blob.sha256, headers) } : {}),
    ...(datastore.proxyOffload ? {
      proxyTarget: () => datastore.proxyOffload!.target(blob.sha256, blob.size),
      signedProxyPath: (headers: SignedHeaders) => datastore.proxyOffload!.signedPath(blob.sha256, blob.size, headers),
    } : {}),
  };
}

/** Purged between lookup and open: the media is gone, which is a 404 and not a server error. */
function goneIsNotFound(error: unknown): never {
  throw (error as NodeJS.ErrnoException).code === 'ENOENT' ? notFound('Media not found') : error;
}
