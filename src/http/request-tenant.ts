// The one rule for which hosted homeserver a request is for: its `Host`, or its `X-Forwarded-Host` when
// the peer is a trusted proxy (config `trustProxy`). Never the server name in the path: that only says
// where the media lives. Anything else (unknown, empty, doubled, missing) is 404 M_NOT_FOUND.
import type { Request, RequestHandler } from 'express';
import type { HomeserverConfig } from '../config/config.js';
import type { Tenants } from '../config/tenants.js';
import { notFound } from '../matrix/errors.js';

type TrustFn = (address: string, hop: number) => boolean;

const resolved = new WeakMap<Request, HomeserverConfig>();

export const unknownTenant = () => notFound('This media repository does not serve the homeserver this request was sent to');

/** The hosted homeserver `req` addresses by the rule, or undefined. */
export function addressedTenant(tenants: Tenants, req: Request): HomeserverConfig | undefined {
  const host = addressedHost(req);
  return host === undefined ? undefined : tenants.byHostHeader(host);
}

/** Resolves every request's tenant once; requests that address none end here with 404 M_NOT_FOUND. */
export function requireTenant(tenants: Tenants): RequestHandler {
  return (req, _res, next) => {
    const tenant = addressedTenant(tenants, req);
    if (!tenant) throw unknownTenant();
    resolved.set(req, tenant);
    next();
  };
}

/** The tenant requireTenant resolved for `req` (404 if it did not run or found none). */
export function tenantOf(req: Request): HomeserverConfig {
  const tenant = resolved.get(req);
  if (!tenant) throw unknownTenant();
  return tenant;
}

/** The one host name the request addresses; undefined when it is missing, empty, or given more than once. */
function addressedHost(req: Request): string | undefined {
  const trust = req.app.get('trust proxy fn') as TrustFn | undefined;
  const forwarded = headerValues(req.rawHeaders, 'x-forwarded-host');
  const viaProxy = forwarded.length > 0 && trust !== undefined && trust(req.socket.remoteAddress ?? '', 0);
  const values = viaProxy ? forwarded : headerValues(req.rawHeaders, 'host');
  // A comma list is several hosts (a proxy chain appending): just as ambiguous as two headers.
  if (values.length !== 1 || values[0] === '' || values[0]!.includes(',')) return undefined;
  return values[0];
}

function headerValues(rawHeaders: readonly string[], name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === name) values.push(rawHeaders[i + 1]!.trim());
  return values;
}
