// What GET .../media/config and MSC4034's usage endpoint answer: the upload limit as it stands for this
// user (quotas included) and the user's usage, in MSC4034's unstable field names.
import type { AppServices } from '../services.js';
import type { AuthenticatedCaller } from '../auth.js';

const MSC4034 = 'org.matrix.msc4034';
export const MSC4034_USAGE = `/_matrix/client/unstable/${MSC4034}/media/usage`;

type ConfigServices = Pick<AppServices, 'quotas'>;

export async function mediaConfig(services: ConfigServices, caller: AuthenticatedCaller): Promise<Record<string, number>> {
  const remaining = await services.quotas.remainingBytes(caller.tenant, caller.userId);
  return { 'm.upload.size': Math.max(0, Math.min(caller.tenant.maxUploadBytes, remaining)), ...storageLimits(services, caller) };
}

export async function mediaUsage(services: ConfigServices, caller: AuthenticatedCaller): Promise<Record<string, number>> {
  const usage = await services.quotas.usage(caller.tenant.name, caller.userId);
  return { [`${MSC4034}.storage.used`]: usage.bytes, [`${MSC4034}.storage.files`]: usage.files, ...storageLimits(services, caller) };
}

/** The user's byte and file quotas; absent when unlimited. */
function storageLimits(services: ConfigServices, caller: AuthenticatedCaller): Record<string, number> {
  const limits = services.quotas.userLimits(caller.tenant, caller.userId);
  return {
    ...(limits.maxBytes > 0 ? { [`${MSC4034}.storage.size`]: limits.maxBytes } : {}),
    ...(limits.maxFiles > 0 ? { [`${MSC4034}.storage.max_files`]: limits.maxFiles } : {}),
  };
}
