// A database or datastore that cannot be reached is an outage, not a bug: requests get 503 with
// Retry-After, and the log gets one line when it starts, not one per failed request.
import type { Logger } from '../log.js';
import { MatrixError } from '../matrix/errors.js';
import { DatastoreUnavailableError } from '../storage/datastore.js';

export type Dependency = 'database' | 'datastore';

// Connection-level failures: the peer is down, restarting or unreachable, not a bad query.
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE']);
// PostgreSQL: class 08 (connection exception), 57P01-03 (shutdown, cannot connect now), 53300 (too many connections).
const POSTGRES_UNAVAILABLE = /^(08...|57P0[123]|53300)$/;
const POOL_MESSAGES = /Unable to acquire a connection|Connection terminated|Timeout acquiring a connection|Client has encountered a connection error/;
// Filesystem failures of the store itself (disk gone, full, read-only, network mount lost).
const STORAGE_CODES = new Set(['EIO', 'ENOSPC', 'EROFS', 'ENOTCONN', 'ESTALE', 'EDQUOT']);

const RETRY_AFTER_MS = 5000;
const QUIET_MS = 30_000;

export function unavailableDependency(error: unknown): Dependency | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  // An object store that is down, slow or refusing, after the client's own retries.
  if (error instanceof DatastoreUnavailableError) return 'datastore';
  const { code, name, message, syscall } = error as { code?: unknown; name?: string; message?: string; syscall?: string };
  if (typeof code === 'string' && STORAGE_CODES.has(code) && syscall !== 'connect') return 'datastore';
    // Socket errors carry the syscall; a client's own aborted request (code ECONNRESET too) does not.
  if (typeof code === 'string' && ((NETWORK_CODES.has(code) && syscall !== undefined) || POSTGRES_UNAVAILABLE.test(code))) return 'database';
  if (name === 'KnexTimeoutError' || POOL_MESSAGES.test(message ?? '')) return 'database';
  return undefined;
}

export function unavailableError(dependency: Dependency): MatrixError {
  const what = dependency === 'database' ? 'The database' : 'Media storage';
  return new MatrixError(503, 'M_UNKNOWN', `${what} is unreachable: retry later`, { retry_after_ms: RETRY_AFTER_MS });
}

export class OutageLog {
  private readonly lastFailure = new Map<Dependency, number>();
  private readonly suppressed = new Map<Dependency, number>();

  constructor(private readonly log: Logger, private readonly onUnavailable: (d: Dependency) => void = () => {}, private readonly now: () => number = Date.now) {}

  /** Logs when an outage starts (no failure of that dependency for 30 s); later failures only count. */
  report(dependency: Dependency, error: unknown): void {
    this.onUnavailable(dependency);
    const now = this.now();
    const last = this.lastFailure.get(dependency);
    this.lastFailure.set(dependency, now);
    if (last !== undefined && now - last < QUIET_MS) {
      this.suppressed.set(dependency, (this.suppressed.get(dependency) ?? 0) + 1);
      return;
    }
    const { code, name, message } = error as { code?: string; name?: string; message?: string };
    const failuresInPreviousOutage = this.suppressed.get(dependency);
    this.suppressed.set(dependency, 0);
    this.log.error({ dependency, code, error: name, reason: message, failuresInPreviousOutage }, `${dependency} unreachable: answering 503 until it is back (logged once per outage)`);
  }
}
