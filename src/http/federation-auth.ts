// Inbound federation requests, authenticated by federation/inbound-auth from what express received.
import type { Request } from 'express';
import { authenticateRequest, type AuthenticatedRequest, type KeyLookup } from '../federation/inbound-auth.js';
import type { VerifiedRequests } from '../federation/verified-requests.js';
import { authorizationHeaderValues } from '../matrix/x-matrix.js';
import { tenantOf } from './request-tenant.js';

export type FederationAuthenticator = (req: Request) => Promise<AuthenticatedRequest>;

export function federationAuthenticator(keyring: KeyLookup, verified?: VerifiedRequests): FederationAuthenticator {
  return (req) => authenticateRequest(keyring, {
    method: req.method,
    uri: req.originalUrl,
    tenant: tenantOf(req),
    authorization: authorizationHeaderValues(req.rawHeaders),
    // Only requests with a body sign `content`; express leaves req.body undefined without a parser.
    content: req.body as unknown,
  }, verified);
}
