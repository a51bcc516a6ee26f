// Fetching one remote media (or a thumbnail of it) from its origin server (NOTES §5): the MSC3916
// federation endpoint signed by the requesting homeserver, its multipart body read as a stream, a Location
// part followed without credentials; the legacy /_matrix/media/v3 endpoint when the remote does not know
// the federation one (404/405 with M_UNRECOGNIZED or a body that is not JSON), or when the homeserver has
// no signing key.
import type { Readable } from 'node:stream';
import { readMultipartMixed, MultipartError } from '../matrix/multipart.js';
import { NoSigningKeyError, remoteError, type FederationClient } from './client.js';
import { limitedBody, readLimited, UpstreamError, type Response } from './http.js';

export interface ThumbnailParams {
  readonly width: number;
  readonly height: number;
  readonly method?: 'crop' | 'scale';
  readonly animated?: boolean;
}

export interface RemoteMediaRequest {
  /** The hosted homeserver asking; its key signs the request. */
  readonly origin: string;
  readonly serverName: string;
  readonly mediaId: string;
  readonly thumbnail?: ThumbnailParams;
  /** Sent as timeout_ms: how long the origin may wait for an upload still in progress. */
  readonly timeoutMs: number;
  /** Deadline for response headers (of each request: federation, Location, legacy). */
  readonly headersTimeoutMs: number;
  readonly maxBytes: number;
  /** Longest pause in the body. */
  readonly idleMs: number;
  /** Called when the origin homeserver has no key, just before the unauthenticated legacy request. */
  readonly onNoSigningKey?: (origin: string) => void;
}

export interface RemoteMediaBody {
  readonly contentType: string | undefined;
  readonly contentDisposition: string | undefined;
  /** The media part's own Content-Length when it gave one. */
  readonly declaredLength: number | undefined;
  /** At most maxBytes; errors (UpstreamError) when the remote cuts it short, stalls or sends more. */
  readonly body: Readable;
  readonly via: 'federation' | 'federation-location' | 'legacy';
}

// The JSON part, headers and boundaries around the media bytes; the multipart reader bounds each of them.
const MULTIPART_OVERHEAD_BYTES = 256 * 1024;
const MAX_ERROR_BYTES = 64 * 1024;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** Fetches the media; a remote error answer throws RemoteHttpError, transport trouble UpstreamError. */
export async function fetchRemoteMedia(client: FederationClient, request: RemoteMediaRequest): Promise<RemoteMediaBody> {
  let federation: Response;
  try {
    federation = await client.get(request.serverName, federationPath(request), { origin: request.origin, signed: true, timeoutMs: request.headersTimeoutMs });
  } catch (error) {
    if (!(error instanceof NoSigningKeyError)) throw error;
    request.onNoSigningKey?.(request.origin);
    return fetchLegacy(client, request);
  }
  if (federation.status === 200) return readFederationBody(client, request, federation);
  const body = await readErrorBody(federation);
  if (isUnrecognized(federation.status, body)) return fetchLegacy(client, request);
  throw remoteError(federation, body.json);
}

export function federationPath(request: Pick<RemoteMediaRequest, 'mediaId' | 'thumbnail' | 'timeoutMs'>): string {
  const id = encodeURIComponent(request.mediaId);
  const query = new URLSearchParams();
  if (request.thumbnail) addThumbnailParams(query, request.thumbnail);
  query.set('timeout_ms', String(request.timeoutMs));
  return `/_matrix/federation/v1/media/${request.thumbnail ? 'thumbnail' : 'download'}/${id}?${query}`;
}

export function legacyPath(request: Pick<RemoteMediaRequest, 'serverName' | 'mediaId' | 'thumbnail' | 'timeoutMs'>): string {
  const query = new URLSearchParams();
  if (request.thumbnail) addThumbnailParams(query, request.thumbnail);
  // allow_remote=false: the origin must not fetch from elsewhere (MSC3916), which prevents loops.
  query.set('allow_remote', 'false');
  query.set('allow_redirect', 'true');
  query.set('timeout_ms', String(request.timeoutMs));
  const kind = request.thumbnail ? 'thumbnail' : 'download';
  return `/_matrix/media/v3/${kind}/${encodeURIComponent(request.serverName)}/${encodeURIComponent(request.mediaId)}?${query}`;
}

function addThumbnailParams(query: URLSearchParams, thumbnail: ThumbnailParams): void {
  query.set('width', String(thumbnail.width));
  query.set('height', String(thumbnail.height));
  if (thumbnail.method) query.set('method', thumbnail.method);
  if (thumbnail.animated !== undefined) query.set('animated', String(thumbnail.animated));
}

async function readFederationBody(client: FederationClient, request: RemoteMediaRequest, response: Response): Promise<RemoteMediaBody> {
  const contentType = response.headers['content-type'] ?? '';
  const stream = limitedBody(response.body, { maxBytes: request.maxBytes + MULTIPART_OVERHEAD_BYTES, idleMs: request.idleMs }, 'multipart response', response.headers);
  let multipart;
  try {
    multipart = await readMultipartMixed(stream, contentType);
  } catch (error) {
    stream.destroy();
    if (error instanceof MultipartError) throw new UpstreamError('bad-response', `${request.serverName} sent an unreadable multipart body: ${error.message}`, { cause: error });
    throw error;
  }
  if (multipart.location !== undefined) {
    multipart.body.destroy(); // "SHOULD be empty"; the rest of the response is of no use
    let url: URL;
    try {
      url = new URL(multipart.location, response.url);
    } catch {
      throw new UpstreamError('bad-response', `${request.serverName} sent an invalid Location`);
    }
    const located = await client.fetchUrl(url, response, request.headersTimeoutMs);
    return plainBody(request, located, 'federation-location');
  }
  return {
    contentType: multipart.headers['content-type'],
    contentDisposition: multipart.headers['content-disposition'],
    declaredLength: declaredLength(multipart.headers['content-length']),
    body: multipart.body,
    via: 'federation',
  };
}

async function fetchLegacy(client: FederationClient, request: RemoteMediaRequest): Promise<RemoteMediaBody> {
  const first = await client.get(request.serverName, legacyPath(request), { signed: false, timeoutMs: request.headersTimeoutMs });
  const location = first.headers.location;
  // allow_redirect=true lets the origin send us to its CDN; each hop goes through the IP filter again.
  const response = REDIRECTS.has(first.status) && location !== undefined
    ? (first.body.resume(), await client.fetchUrl(new URL(location, first.url), first, request.headersTimeoutMs))
    : first;
  return plainBody(request, response, 'legacy');
}

/** A plain (non-multipart) media response: 200 with the bytes, or an error answer. */
async function plainBody(request: RemoteMediaRequest, response: Response, via: RemoteMediaBody['via']): Promise<RemoteMediaBody> {
  if (response.status !== 200) throw remoteError(response, (await readErrorBody(response)).json);
  return {
    contentType: response.headers['content-type'],
    contentDisposition: response.headers['content-disposition'],
    declaredLength: declaredLength(response.headers['content-length']),
    body: limitedBody(response.body, { maxBytes: request.maxBytes, idleMs: request.idleMs }, 'media', response.headers),
    via,
  };
}

async function readErrorBody(response: Response): Promise<{ json: unknown; isJson: boolean }> {
  const text = await readLimited(response.body, { maxBytes: MAX_ERROR_BYTES, idleMs: 10_000 }, 'error response').catch(() => undefined);
  if (text === undefined) return { json: undefined, isJson: false };
  try {
    return { json: JSON.parse(text.toString('utf8')), isJson: true };
  } catch {
    return { json: undefined, isJson: false };
  }
}

/** The spec's fallback trigger (404 M_UNRECOGNIZED) and what older servers and proxies send instead. */
function isUnrecognized(status: number, body: { json: unknown; isJson: boolean }): boolean {
  if (status !== 404 && status !== 405) return false;
  if (!body.isJson) return true;
  const errcode = typeof body.json === 'object' && body.json !== null ? (body.json as Record<string, unknown>).errcode : undefined;
  return errcode === 'M_UNRECOGNIZED';
}

function declaredLength(header: string | undefined): number | undefined {
  if (header === undefined || !/^\d+$/.test(header.trim())) return undefined;
  return Number(header.trim());
}

/**
 * The file name of a Content-Disposition value: filename* (RFC 8187, UTF-8 or ISO-8859-1) wins over
 * filename; quoted or token values; null when absent or when it holds control characters or path parts.
 */
export function fileNameFromContentDisposition(value: string | undefined): string | null {
  if (value === undefined) return null;
  const params = new Map<string, string>();
  const param = /;\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)/g;
  for (const match of value.matchAll(param)) {
    const name = match[1]!.toLowerCase();
    const raw = match[2]!.trim();
    if (!params.has(name)) params.set(name, raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw);
  }
  const extended = params.get('filename*');
  const decoded = extended === undefined ? undefined : decodeExtValue(extended);
  const name = decoded ?? params.get('filename');
  if (name === undefined || name === '' || /[\u0000-\u001f\u007f/\\]/.test(name)) return null;
  return name;
}

function decodeExtValue(value: string): string | undefined {
  const match = /^([A-Za-z0-9!#$%&+\-^_`{}~]+)'[^']*'(.*)$/.exec(value);
  if (!match) return undefined;
  const charset = match[1]!.toLowerCase();
  try {
    if (charset === 'utf-8') return decodeURIComponent(match[2]!);
    if (charset === 'iso-8859-1') return match[2]!.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  } catch {
    return undefined;
  }
  return undefined;
}
