// The shape of one hostile request and what must come back, and the routes every table walks.
import type { RawSocketRequest } from '../../helpers/raw-socket.js';

export const TENANT = 'a.example';
export const TOKEN = 'tok-alice';
export const ADMIN_SECRET = 'hostile-admin-secret';
/** The service's maxUploadBytes in this suite. */
export const MAX_UPLOAD = 64 * 1024;

/** errcode: the Matrix error that must come back; 'success': what the route gives when nothing is wrong. */
export interface Expected {
  status: number;
  errcode: string | 'success';
}

export interface HostileCase {
  name: string;
  /** A request built from parts, or bytes written as they are. */
  request: RawSocketRequest | Buffer;
  expected: Expected;
}

/** What a table knows of the service: an uploaded image's media ID. */
export interface Context {
  mediaId: string;
}

export type Header = [string, string];
export const host = (value = TENANT): Header => ['Host', value];
export const bearer = (token = TOKEN): Header => ['Authorization', `Bearer ${token}`];

export const err = (status: number, errcode: string): Expected => ({ status, errcode });
export const ok = (status = 200): Expected => ({ status, errcode: 'success' });
/** Refused by Node's parser before express sees it; the service still answers Matrix JSON (http/client-error). */
export const parserRefusal = (status = 400): Expected => ({ status, errcode: 'M_UNKNOWN' });

export interface Route {
  name: string;
  method: string;
  path: (ctx: Context) => string;
  /** Headers besides Host that make the request succeed. */
  auth: Header[];
  body?: string;
  success: Expected;
  /** Other methods on the path answer 405; OPTIONS is CORS (204) on client routes. */
  family: 'client' | 'federation' | 'admin';
}

export const ROUTES: Route[] = [
  { name: 'v1 config', method: 'GET', path: () => '/_matrix/client/v1/media/config', auth: [bearer()], success: ok(), family: 'client' },
  { name: 'v1 download', method: 'GET', path: (c) => `/_matrix/client/v1/media/download/${TENANT}/${c.mediaId}`, auth: [bearer()], success: ok(), family: 'client' },
  { name: 'v1 thumbnail', method: 'GET', path: (c) => `/_matrix/client/v1/media/thumbnail/${TENANT}/${c.mediaId}?width=8&height=8`, auth: [bearer()], success: ok(), family: 'client' },
  { name: 'v3 download', method: 'GET', path: (c) => `/_matrix/media/v3/download/${TENANT}/${c.mediaId}`, auth: [], success: ok(), family: 'client' },
  { name: 'r0 thumbnail', method: 'GET', path: (c) => `/_matrix/media/r0/thumbnail/${TENANT}/${c.mediaId}?width=8&height=8`, auth: [], success: ok(), family: 'client' },
  { name: 'v3 config', method: 'GET', path: () => '/_matrix/media/v3/config', auth: [bearer()], success: ok(), family: 'client' },
  { name: 'upload', method: 'POST', path: () => '/_matrix/media/v3/upload', auth: [bearer(), ['Content-Type', 'text/plain']], body: 'hostile', success: ok(), family: 'client' },
  { name: 'usage', method: 'GET', path: () => '/_matrix/client/unstable/org.matrix.msc4034/media/usage', auth: [bearer()], success: ok(), family: 'client' },
  { name: 'preview_url', method: 'GET', path: () => '/_matrix/client/v1/media/preview_url?url=https://example.org', auth: [bearer()], success: err(404, 'M_UNRECOGNIZED'), family: 'client' },
  // No signature: a federation request that reached its tenant ends at authentication.
  { name: 'federation download', method: 'GET', path: (c) => `/_matrix/federation/v1/media/download/${c.mediaId}`, auth: [], success: err(401, 'M_UNAUTHORIZED'), family: 'federation' },
  { name: 'federation thumbnail', method: 'GET', path: (c) => `/_matrix/federation/v1/media/thumbnail/${c.mediaId}?width=8&height=8`, auth: [], success: err(401, 'M_UNAUTHORIZED'), family: 'federation' },
  { name: 'admin usage', method: 'GET', path: () => `/_matrix/media/unstable/admin/usage/${TENANT}`, auth: [bearer(ADMIN_SECRET)], success: ok(), family: 'admin' },
];

/** `route` as sent with `headers` (Host included by the caller) and its own body. */
export function routeRequest(route: Route, ctx: Context, headers: Header[], extra: Partial<RawSocketRequest> = {}): RawSocketRequest {
  const body = extra.body ?? route.body;
  const length: Header[] = body === undefined ? [] : [['Content-Length', String(Buffer.byteLength(body))]];
  return { method: route.method, path: route.path(ctx), headers: [...headers, ...length], body, ...extra };
}
