// Who may use the admin API: provider-wide admins (config `admins`, or the sharedSecretAuth token) act on
// everything; a hosted homeserver's admins (its `admins`, or per its Synapse admin API) on their own
// homeserver's media. Everyone else gets 403 M_FORBIDDEN.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Request } from 'express';
import got from 'got';
import type { HomeserverConfig } from '../config/config.js';
import type { Logger } from '../log.js';
import { LruCache } from '../lru-cache.js';
import { forbidden, MatrixError } from '../matrix/errors.js';
import type { AdminScope } from '../media/media-selection.js';
import { accessTokenOf, type ClientAuthenticator } from './auth.js';

export interface AdminAuthSettings {
  /** Provider-wide admins' user IDs. */
  admins: string[];
  /** The shared secret, already read from its file or variable. */
  sharedSecret: string | undefined;
  /** Homeserver name -> the token its Synapse admin API is asked with, where configured. */
  adminApiTokens: Map<string, string>;
  adminCheckCacheMs: number;
  timeoutMs: number;
}

const CACHE_LIMIT = 10_000;
const notAdmin = () => forbidden('You are not an administrator of this media repository or of your homeserver');

export class AdminAuthenticator {
  private readonly synapseAnswers = new LruCache<string, { admin: boolean; expiresAt: number }>(CACHE_LIMIT);
  private readonly secretDigest: Buffer | undefined;

  constructor(private readonly clients: ClientAuthenticator, private readonly settings: AdminAuthSettings, private readonly log: Logger) {
    this.secretDigest = settings.sharedSecret === undefined ? undefined : digest(settings.sharedSecret);
  }

  async authenticate(req: Request): Promise<AdminScope> {
    const token = accessTokenOf(req, true); // ?access_token= too: matrix-media-repo's scripts use it
    // Digests compared in constant time: the comparison reveals nothing of the secret.
    if (token !== undefined && this.secretDigest && timingSafeEqual(digest(token), this.secretDigest)) {
      return { actor: 'shared secret', homeserver: null };
    }
    const caller = await this.clients.authenticate(req, { allowGuests: false });
    if (this.settings.admins.includes(caller.userId)) return { actor: caller.userId, homeserver: null };
    const { tenant } = caller;
    // A homeserver vouches only for its own users.
    if (!caller.userId.endsWith(`:${tenant.name}`)) throw notAdmin();
    if (tenant.admins.includes(caller.userId)) return { actor: caller.userId, homeserver: tenant.name };
    if (tenant.adminApiKind === 'synapse' && (await this.synapseSaysAdmin(tenant, caller.userId, token!))) {
      return { actor: caller.userId, homeserver: tenant.name };
    }
    throw notAdmin();
  }

  private async synapseSaysAdmin(tenant: HomeserverConfig, userId: string, callerToken: string): Promise<boolean> {
    const key = `${tenant.name}\n${userId}`;
    const cached = this.synapseAnswers.get(key);
    if (cached && cached.expiresAt > Date.now()) return cached.admin;
    const token = this.settings.adminApiTokens.get(tenant.name) ?? callerToken;
    let admin = false;
    try {
      const response = await got.get(`${tenant.clientApi}/_synapse/admin/v1/users/${encodeURIComponent(userId)}/admin`, {
        headers: { authorization: `Bearer ${token}` },
        timeout: { request: this.settings.timeoutMs },
        retry: { limit: 0 },
        throwHttpErrors: false,
        followRedirect: false,
        responseType: 'json',
      });
      admin = response.statusCode === 200 && (response.body as { admin?: unknown }).admin === true;
      if (response.statusCode >= 500) throw new Error(`HTTP ${response.statusCode}`);
    } catch (error) {
      // Only the message: got errors carry the request options, token included.
      this.log.warn({ homeserver: tenant.name, err: (error as Error).name }, 'homeserver admin check failed');
      throw new MatrixError(502, 'M_UNKNOWN', 'The homeserver could not be asked whether you are an administrator');
    }
    if (this.settings.adminCheckCacheMs > 0) this.synapseAnswers.set(key, { admin, expiresAt: Date.now() + this.settings.adminCheckCacheMs });
    return admin;
  }
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
