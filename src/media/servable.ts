// Media (or a thumbnail) ready to be served, local or remote: the one shape every route sends.
import type { Readable } from 'node:stream';
import type { ByteRange, Datastore, RedirectHeaders } from '../storage/datastore.js';

export const DEFAULT_CONTENT_TYPE = 'application/octet-stream';

export interface ServableMedia {
  contentType: string;
  uploadName: string | null;
  /** Undefined while remote media is still streaming in from its origin: no Content-Length, and no Range. */
  size: number | undefined;
  sha256: string | undefined;
  /** When the bytes were stored here (upload, or remote cache populated): the legacy freeze compares it. */
  storedTs?: number;
  open(range?: ByteRange): Promise<Readable>;
  /** A URL to send the client to instead of the bytes, where the datastore offers one. */
  redirectUrl?(headers?: RedirectHeaders): Promise<string | undefined>;
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
  return {
    contentType: blob.contentType ?? DEFAULT_CONTENT_TYPE,
    uploadName: blob.uploadName,
    size: blob.size,
    sha256: blob.sha256,
    storedTs: blob.storedTs,
    open: (range) => datastore.read(blob.sha256, range),
    redirectUrl: async (headers) => datastore.redirectUrl?.(blob.sha256, headers),
  };
}
