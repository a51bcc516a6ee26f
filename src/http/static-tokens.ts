// Access tokens this service accepts itself, per homeserver: bots, bridges and the trial homeserver need no
// homeserver session. Only digests are kept, and every check compares against every digest in constant time.
import { hash, timingSafeEqual } from 'node:crypto';

interface Entry {
  digest: Buffer;
  userId: string;
}

const digestOf = (token: string) => hash('sha256', token, 'buffer');

export class StaticTokens {
  private readonly byTenant = new Map<string, Entry[]>();

  /** `tokens`: homeserver name -> (token -> user ID). */
  constructor(tokens: ReadonlyMap<string, ReadonlyMap<string, string>> = new Map()) {
    for (const [tenant, map] of tokens) {
      this.byTenant.set(tenant, [...map].map(([token, userId]) => ({ digest: digestOf(token), userId })));
    }
  }

  /** The user `token` belongs to on `tenant`, or undefined. */
  userOf(tenant: string, token: string): string | undefined {
    const entries = this.byTenant.get(tenant);
    // Most homeservers have none: no digest to compute on every request.
    if (!entries?.length) return undefined;
    const presented = digestOf(token);
    let found: string | undefined;
    // No early exit: the time taken does not tell which entry, if any, matched.
    for (const entry of entries) if (timingSafeEqual(entry.digest, presented)) found ??= entry.userId;
    return found;
  }

  /** Whether `tenant` has any static token (a tenant without clientApi can only use these). */
  has(tenant: string): boolean {
    return (this.byTenant.get(tenant)?.length ?? 0) > 0;
  }
}
