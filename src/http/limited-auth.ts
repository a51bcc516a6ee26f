// Authentication that also spends the caller's per-user (client) or per-server (federation) tokens, so
// every authenticated route is limited without each remembering to ask.
import type { Request } from 'express';
import { ClientAuthenticator, type AuthenticatedCaller } from './auth.js';
import type { FederationAuthenticator } from './federation-auth.js';
import { noteHomeserver, noteRemoteServer } from './request-log.js';
import type { RateLimits } from './rate-limits.js';
import { routeFamily } from './route-family.js';

export class RateLimitedAuthenticator extends ClientAuthenticator {
  private readonly limits: RateLimits;

  constructor(limits: RateLimits, ...args: ConstructorParameters<typeof ClientAuthenticator>) {
    super(...args);
    this.limits = limits;
  }

  override async authenticate(req: Request, options: { allowGuests: boolean }): Promise<AuthenticatedCaller> {
    const caller = await super.authenticate(req, options);
    noteHomeserver(req, caller.tenant.name);
    this.limits.checkUser(caller.tenant, routeFamily(req), caller.userId, req.ip ?? '');
    return caller;
  }
}

export function rateLimitedFederation(authenticate: FederationAuthenticator, limits: RateLimits): FederationAuthenticator {
  return async (req) => {
    const authenticated = await authenticate(req);
    noteRemoteServer(req, authenticated.origin);
    noteHomeserver(req, authenticated.tenant.name);
    limits.checkServer(authenticated.tenant, authenticated.origin, req.ip ?? '');
    return authenticated;
  };
}
