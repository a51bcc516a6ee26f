// Where the reverse proxy finds a filesystem datastore's blob, so that it sends the bytes itself: the
// internal path for X-Accel-Redirect / X-Sendfile, and nginx secure_link URLs for federation peers.
import { createHash } from 'node:crypto';

export interface ProxyOffloadOptions {
  readonly mode: 'x-accel-redirect' | 'x-sendfile';
  /** The internal location (nginx) or folder (X-Sendfile) that maps to the datastore's path. */
  readonly internalPrefix: string;
  /** Smaller blobs are served by this service: one proxy round trip costs more than their bytes. */
  readonly minBytes: number;
  readonly secureLink?: { readonly prefix: string; readonly secret: string; readonly expirySeconds: number };
}

/** The response header naming the file, and its value. */
export interface OffloadTarget {
  readonly header: 'X-Accel-Redirect' | 'X-Sendfile';
  readonly value: string;
}

/** What the signed URL's answer carries, since peers take Content-Type and Content-Disposition from it. */
export interface SignedHeaders {
  /** With parameters (a charset) it cannot go through nginx unchanged: the media is then not signed. */
  readonly contentType: string;
  readonly disposition: 'inline' | 'attachment';
  readonly fileName: string | null;
}

// nginx copies the query values into headers as they are: only values that need no decoding go there.
const PLAIN_CONTENT_TYPE = /^[A-Za-z0-9.+_-]+\/[A-Za-z0-9.+_-]+$/;

/** The blob's path under a filesystem datastore's root (and under a proxy prefix that maps to it). */
export function blobPath(sha256: string): string {
  return `${sha256.slice(0, 2)}/${sha256.slice(2, 4)}/${sha256}`;
}

export class ProxyOffload {
  constructor(private readonly options: ProxyOffloadOptions) {}

  /** The header handing a blob of `size` bytes to the proxy; undefined below minBytes. */
  target(sha256: string, size: number): OffloadTarget | undefined {
    if (size < this.options.minBytes) return undefined;
    const header = this.options.mode === 'x-accel-redirect' ? 'X-Accel-Redirect' : 'X-Sendfile';
    return { header, value: `${this.options.internalPrefix}/${blobPath(sha256)}` };
  }

  /**
   * A path and query nginx serves without authentication until it expires (the README's snippet checks
   * it with secure_link); undefined below minBytes or for a type with parameters, which stay streamed.
   */
  signedPath(sha256: string, size: number, headers: SignedHeaders, nowMs = Date.now()): string | undefined {
    const link = this.options.secureLink;
    if (link === undefined || size < this.options.minBytes || !PLAIN_CONTENT_TYPE.test(headers.contentType)) return undefined;
    const expires = Math.floor(nowMs / 1000) + link.expirySeconds;
    const uri = `${link.prefix}/${blobPath(sha256)}`;
    const args = { type: headers.contentType, cd: headers.disposition, name: headers.fileName ? rfc8187(headers.fileName) : '' };
    const md5 = secureLinkMd5(link.secret, String(expires), uri, args.type, args.cd, args.name);
    return `${uri}?md5=${md5}&expires=${expires}&type=${args.type}&cd=${args.cd}&name=${args.name}`;
  }
}

/**
 * nginx's `secure_link_md5 "$secure_link_expires:$uri:$arg_type:$arg_cd:$arg_name <secret>"`, base64url
 * without padding; ":" never occurs inside a value, so no value can borrow from the next.
 */
export function secureLinkMd5(secret: string, ...values: string[]): string {
  return createHash('md5').update(`${values.join(':')} ${secret}`).digest('base64url');
}

/** UTF-8, percent-encoded down to RFC 8187 attr-chars that are also plain in a URL query. */
function rfc8187(name: string): string {
  return encodeURIComponent(name).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}
