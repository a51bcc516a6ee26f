// Upload quotas per user (first matching user-ID glob) and per homeserver: bytes stored, files stored,
// bytes in the last 24 hours. The media table is the truth: usage is summed in the upload's own
// transaction under an advisory lock, so concurrent uploads and other instances cannot overshoot.
import type { Knex } from 'knex';
import type { HomeserverConfig } from '../config/config.js';
import { MatrixError } from '../matrix/errors.js';
import { globMatcher } from '../matrix/glob.js';

export type QuotaLimitName = 'maxBytes' | 'maxFiles' | 'maxBytesPerDay';
export type QuotaLimits = Record<QuotaLimitName, number>;
export interface Usage { bytes: number; files: number; bytesPerDay: number }
export type QuotaTenant = Pick<HomeserverConfig, 'name' | 'quotas'>;

/** Told about every refusal, by limit and scope (for metrics). */
export type QuotaRefusals = (homeserver: string, limit: QuotaLimitName, scope: 'user' | 'homeserver') => void;

// Advisory lock class (first key of pg_advisory_xact_lock(int, int)).
const QUOTA_LOCK = 0x6d71756f;
const DAY_MS = 24 * 3600_000;
const LIMITS: QuotaLimitName[] = ['maxBytes', 'maxFiles', 'maxBytesPerDay'];

export class Quotas {
  private readonly matchers = new Map<string, (userId: string) => boolean>();

  constructor(private readonly knex: Knex, private readonly onRefusal: QuotaRefusals = () => {}, private readonly now: () => number = Date.now) {}

  /** The user's rule (the first whose glob matches); all zero (no limit) when none does. */
  userLimits(tenant: QuotaTenant, userId: string): QuotaLimits & { maxPending?: number } {
    const rule = tenant.quotas.users.find((r) => this.matcher(r.glob)(userId));
    return { maxBytes: rule?.maxBytes ?? 0, maxFiles: rule?.maxFiles ?? 0, maxBytesPerDay: rule?.maxBytesPerDay ?? 0, maxPending: rule?.maxPending };
  }

  /** Stored uploads of the user (or, without one, of the whole homeserver). */
  async usage(serverName: string, userId?: string, db: Knex = this.knex): Promise<Usage> {
    const since = this.now() - DAY_MS;
    const query = db('media').where({ server_name: serverName, is_remote: false }).whereNotNull('sha256');
    if (userId !== undefined) query.where({ user_id: userId });
    const row = await query.first(
      db.raw('COALESCE(SUM(size), 0) AS bytes'),
      db.raw('COUNT(*) AS files'),
      db.raw('COALESCE(SUM(size) FILTER (WHERE created_ts > ?), 0) AS day', [since]),
    ) as { bytes: string | number; files: string | number; day: string | number } | undefined;
    return { bytes: Number(row?.bytes ?? 0), files: Number(row?.files ?? 0), bytesPerDay: Number(row?.day ?? 0) };
  }

  /**
   * Read without a lock, before any byte is received: throws when an upload of `declaredSize` bytes is
   * already over a quota; else the most bytes it may have, and the error for a stream that passes them.
   */
  async admit(tenant: QuotaTenant, userId: string, declaredSize = 0): Promise<{ maxBytes: number; tooLarge: () => Error } | undefined> {
    let tightest: { maxBytes: number; tooLarge: () => Error } | undefined;
    for (const scope of ['user', 'homeserver'] as const) {
      const limits = scope === 'user' ? this.userLimits(tenant, userId) : tenant.quotas.homeserver;
      if (!LIMITS.some((l) => limits[l] > 0)) continue;
      const usage = await this.usage(tenant.name, scope === 'user' ? userId : undefined);
      this.refuseIfOver(tenant.name, scope, limits, usage, declaredSize, userId);
      for (const limit of ['maxBytes', 'maxBytesPerDay'] as const) {
        if (limits[limit] <= 0) continue;
        const left = limits[limit] - (limit === 'maxBytes' ? usage.bytes : usage.bytesPerDay);
        if (tightest && tightest.maxBytes <= left) continue;
        tightest = { maxBytes: left, tooLarge: () => this.refusal(tenant.name, scope, limit, limits[limit], userId) };
      }
    }
    return tightest;
  }

  /** Bytes the user may still upload in one file: what /config reports (Infinity: no byte quota). */
  async remainingBytes(tenant: QuotaTenant, userId: string): Promise<number> {
    let remaining = Infinity;
    for (const scope of ['user', 'homeserver'] as const) {
      const limits = scope === 'user' ? this.userLimits(tenant, userId) : tenant.quotas.homeserver;
      if (!LIMITS.some((l) => limits[l] > 0)) continue;
      const usage = await this.usage(tenant.name, scope === 'user' ? userId : undefined);
      if (overLimit(limits, usage, 0)) return 0;
      if (limits.maxBytes > 0) remaining = Math.min(remaining, limits.maxBytes - usage.bytes);
      if (limits.maxBytesPerDay > 0) remaining = Math.min(remaining, limits.maxBytesPerDay - usage.bytesPerDay);
    }
    return remaining;
  }

  /** Throws the quota error when storing `size` more bytes (one more file) would pass a quota. Call inside the storing transaction. */
  async check(trx: Knex.Transaction, tenant: QuotaTenant, userId: string, size: number): Promise<void> {
    const user = this.userLimits(tenant, userId);
    const hs = tenant.quotas.homeserver;
    const userLimited = LIMITS.some((l) => user[l] > 0);
    const hsLimited = LIMITS.some((l) => hs[l] > 0);
    if (!userLimited && !hsLimited) return;
    // A homeserver total serialises all its uploads; else only the user's own.
    const lockKey = hsLimited ? tenant.name : `${tenant.name}|${userId}`;
    await trx.raw('SELECT pg_advisory_xact_lock(?, hashtext(?))', [QUOTA_LOCK, lockKey]);
    if (userLimited) this.refuseIfOver(tenant.name, 'user', user, await this.usage(tenant.name, userId, trx), size, userId);
    if (hsLimited) this.refuseIfOver(tenant.name, 'homeserver', hs, await this.usage(tenant.name, undefined, trx), size, userId);
  }

  /** The error for an upload past `limit`; also what a stream cut at the remaining bytes throws. */
  refusal(serverName: string, scope: 'user' | 'homeserver', limit: QuotaLimitName, value: number, userId: string): MatrixError {
    this.onRefusal(serverName, limit, scope);
    const whose = scope === 'user' ? `${userId}'s` : `the homeserver ${serverName}'s`;
    const what = limit === 'maxFiles' ? `${value} files` : limit === 'maxBytes' ? `${value} bytes stored` : `${value} bytes uploaded per day`;
    return new MatrixError(400, 'M_RESOURCE_LIMIT_EXCEEDED', `Upload refused: it would pass ${whose} quota ${limit} (${what})`, { limit, scope });
  }

  private refuseIfOver(serverName: string, scope: 'user' | 'homeserver', limits: QuotaLimits, usage: Usage, size: number, userId: string): void {
    const over = overLimit(limits, usage, size);
    if (over) throw this.refusal(serverName, scope, over, limits[over], userId);
  }

  private matcher(glob: string): (userId: string) => boolean {
    let match = this.matchers.get(glob);
    if (!match) this.matchers.set(glob, (match = globMatcher(glob)));
    return match;
  }
}

/** The first limit that one more file of `size` bytes would pass. */
export function overLimit(limits: QuotaLimits, usage: Usage, size: number): QuotaLimitName | undefined {
  if (limits.maxFiles > 0 && usage.files + 1 > limits.maxFiles) return 'maxFiles';
  if (limits.maxBytes > 0 && usage.bytes + size > limits.maxBytes) return 'maxBytes';
  if (limits.maxBytesPerDay > 0 && usage.bytesPerDay + size > limits.maxBytesPerDay) return 'maxBytesPerDay';
  return undefined;
}
