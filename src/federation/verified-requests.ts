// Successful X-Matrix verifications, remembered briefly: a peer repeating a request byte for byte (the
// same Authorization values, method, URI, destination and origin) skips the Ed25519 work, never past the
// validity of the keys that verified it. Failures are never remembered.
import { LruCache } from '../lru-cache.js';

// Only verified requests get in, so only peers with valid signatures can fill it; bounded all the same.
const CAPACITY = 10_000;

export interface SignedRequest {
  readonly method: string;
  readonly uri: string;
  readonly destination: string;
  readonly origin: string;
  /** Every Authorization header value, in order (X-Matrix and the scoped schemes alike). */
  readonly authorization: readonly string[];
}

export class VerifiedRequests {
  private readonly entries = new LruCache<string, number>(CAPACITY);

  constructor(private readonly ttlMs: number, private readonly now: () => number = Date.now) {}

  has(request: SignedRequest): boolean {
    if (this.ttlMs <= 0) return false;
    const key = keyOf(request);
    const expiresTs = this.entries.get(key);
    if (expiresTs === undefined) return false;
    if (expiresTs > this.now()) return true;
    this.entries.delete(key);
    return false;
  }

  /** `request` verified with keys valid until `keysValidUntilTs`. */
  remember(request: SignedRequest, keysValidUntilTs: number): void {
    if (this.ttlMs <= 0) return;
    this.entries.set(keyOf(request), Math.min(this.now() + this.ttlMs, keysValidUntilTs));
  }
}

function keyOf(request: SignedRequest): string {
  return JSON.stringify([request.method, request.uri, request.destination, request.origin, request.authorization]);
}
