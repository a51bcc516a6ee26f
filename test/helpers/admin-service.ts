// Admin API test bed: the service hosting a.example and b.example, stand-in homeservers with every kind of
// caller (provider admin, a.example's listed admin, b.example's Synapse-reported admin, plain users), and
// helpers to upload, cache remote media the way a fetch does, and call the admin API.
import { Readable } from 'node:stream';
import type { Database } from '../../src/db/database.js';
import type { RunningService } from '../../src/service.js';
import { rawRequest, type RawResponse } from './raw-http.js';
import { startTestService } from './service-under-test.js';
import { startStandInHomeserver, type StandInHomeserver } from './stand-in-homeserver.js';

export const ADMIN = '/_matrix/media/unstable/admin';
export const SHARED_SECRET = 'provider-shared-secret-0123456789';
export const SECRET_ENV = 'MEDIA_REPO_TEST_ADMIN_SECRET';
/** Tokens: the provider admin, a.example's admin, b.example's admin (per its Synapse), users of each. */
export const ROOT = 'tok-root';
export const AMY = 'tok-amy';
export const BOB = 'tok-bob';
export const ALICE = 'tok-alice';
export const CAROL = 'tok-carol';
export const HOST: Record<string, string> = { [ROOT]: 'a.example', [AMY]: 'a.example', [ALICE]: 'a.example', [BOB]: 'b.example', [CAROL]: 'b.example' };

export interface AdminBed {
  service: RunningService;
  hsA: StandInHomeserver;
  hsB: StandInHomeserver;
  close(): Promise<void>;
}

export async function startAdminBed(options: { db?: Database; raw?: Record<string, unknown> } = {}): Promise<AdminBed> {
  process.env[SECRET_ENV] = SHARED_SECRET;
  const hsA = await startStandInHomeserver({
    [ROOT]: { userId: '@root:a.example' }, [AMY]: { userId: '@amy:a.example' }, [ALICE]: { userId: '@alice:a.example' },
  });
  const hsB = await startStandInHomeserver({ [BOB]: { userId: '@bob:b.example' }, [CAROL]: { userId: '@carol:b.example' } });
  hsB.synapseAdmins.add('@bob:b.example');
  hsB.adminApiTokens.add('b-admin-api-token');
  const service = await startTestService({
    admins: ['@root:a.example'],
    sharedSecretAuth: { token: { env: SECRET_ENV } },
    homeservers: [
      { name: 'a.example', clientApi: hsA.url, admins: ['@amy:a.example'] },
      { name: 'b.example', clientApi: hsB.url, adminApiKind: 'synapse', adminApiToken: 'b-admin-api-token' },
    ],
    media: { legacyFreezeAt: null },
    ...options.raw,
  }, { db: options.db });
  return {
    service, hsA, hsB,
    close: async () => {
      await service.close();
      await hsA.close();
      await hsB.close();
    },
  };
}

const authed = (token: string, host = HOST[token] ?? 'a.example') => ({ host, authorization: `Bearer ${token}` });

/** Calls the admin API (path below /_matrix/media/unstable/admin) as `token`. */
export function adminCall(service: RunningService, method: string, path: string, token: string, host?: string): Promise<RawResponse> {
  return rawRequest(`${service.url}${ADMIN}${path}`, { method, headers: authed(token, host) });
}

export async function uploadAs(
  service: RunningService, token: string, bytes: Buffer | string, contentType = 'application/octet-stream',
): Promise<{ serverName: string; mediaId: string; mxc: string }> {
  const res = await rawRequest(`${service.url}/_matrix/media/v3/upload`, {
    method: 'POST', headers: { ...authed(token), 'content-type': contentType }, body: Buffer.from(bytes),
  });
  if (res.status !== 200) throw new Error(`upload failed: ${res.status} ${res.body.toString()}`);
  const mxc = String(res.json().content_uri);
  const [serverName, mediaId] = mxc.slice('mxc://'.length).split('/') as [string, string];
  return { serverName, mediaId, mxc };
}

/** Stores remote media the way a completed fetch does (datastore, then the media row). */
export async function cacheRemote(service: RunningService, serverName: string, mediaId: string, bytes: Buffer | string): Promise<void> {
  const { datastores, media } = service.services;
  const blob = await datastores.forKind('remote_media', 'a.example').writeStream(Readable.from([Buffer.from(bytes)]), { maxBytes: 1 << 30 });
  await media.insertMedia({ serverName, mediaId, isRemote: true, userId: null, contentType: 'application/octet-stream', uploadName: null }, blob);
}

/** Downloads through the authenticated client API as `token` (which records who fetched remote media). */
export function downloadAs(service: RunningService, token: string, serverName: string, mediaId: string): Promise<RawResponse> {
  return rawRequest(`${service.url}/_matrix/client/v1/media/download/${serverName}/${mediaId}`, { headers: authed(token), allowIncomplete: true });
}

export async function mediaRow(service: RunningService, serverName: string, mediaId: string) {
  return service.services.db.knex('media').where({ server_name: serverName, media_id: mediaId }).first();
}
