// Fetching one remote media (or a thumbnail of it) from its origin server (server-server API "Content
// Repository", https://spec.matrix.org/v1.16/server-server-api/#content-repository): the MSC3916
// federation endpoint signed by the requesting homeserver, its multipart body read as a stream, a Location
// part followed without credentials; the legacy /_matrix/media/v3 endpoint when the remote does not know
// the federation one (404/405 with M_UNRECOGNIZED or a body that is not JSON), or when the homeserver has
// no signing key.
import type { Readable } from 'node:stream';
import { MultipartError } from '../matrix/multipart.js';
import { readMultipartMixed } from '../matrix/multipart-reader.js';
import type { ThumbnailSpec } from '../matrix/thumbnail-spec.js';
import { errcodeOf, NoSigningKeyError, readErrorBody, remoteError, type ErrorBody, type FederationClient } from './client.js';
import { limitedBody, UpstreamError, type Response } from './http.js';

export interface RemoteMediaRequest {
  /** The hosted homeserver asking; its key signs the request. */
  readonly origin: string;
  readonly serverName: string;
  readonly mediaId: string;
  readonly thumbnail?: ThumbnailSpec;
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

function addThumbnailParams(query: URLSearchParams, thumbnail: ThumbnailSpec): void {
  query.set('width', String(thumbnail.width));
  query.set('height', String(thumbnail.height));
  query.set('method', thumbnail.method);
  // Only asked for when wanted: servers that predate the parameter then see the request they know.
  if (thumbnail.animated) query.set('animated', 'true');
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
    const located = await fetchElsewhere(client, request, url, response);
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
    ? (first.body.resume(), await fetchElsewhere(client, request, new URL(location, first.url), first))
    : first;
  return plainBody(request, response, 'legacy');
}

/**
 * Follows a Location part or redirect. Failing to reach where it points is this media's failure, not the
 * origin's: a bad response, so the origin's other media are not backed off.
 */
async function fetchElsewhere(client: FederationClient, request: RemoteMediaRequest, url: URL, base: Response): Promise<Response> {
  try {
    return await client.fetchUrl(url, base, request.headersTimeoutMs);
  } catch (error) {
    if (!(error instanceof UpstreamError) || !['unreachable', 'blocked', 'timeout'].includes(error.kind)) throw error;
    throw new UpstreamError('bad-response', `the Location ${request.serverName} gave could not be fetched: ${error.message}`, { cause: error });
  }
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

/** The spec's fallback trigger (404 M_UNRECOGNIZED) and what older servers and proxies send instead. */
function isUnrecognized(status: number, body: ErrorBody): boolean {
  if (status !== 404 && status !== 405) return false;
  return !body.isJson || errcodeOf(body.json) === 'M_UNRECOGNIZED';
}

function declaredLength(header: string | undefined): number | undefined {
  if (header === undefined || !/^\d+$/.test(header.trim())) return undefined;
  return Number(header.trim());
}
