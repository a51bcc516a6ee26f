// Token buckets by key, on an injectable clock: the one mechanism behind every rate limit.

export type Clock = () => number;

/** perSecond tokens flow in, up to burstCount; perSecond 0 means no limit. */
export interface BucketSpec {
  perSecond: number;
  burstCount: number;
}

interface Bucket { tokens: number; at: number }

// Past this many keys, buckets that have refilled (idle callers) are forgotten.
const SWEEP_ABOVE = 50_000;

export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket & { spec: BucketSpec }>();

  constructor(private readonly clock: Clock) {}

  /** Takes `cost` tokens: 0 when granted, else the milliseconds until they would be there (nothing taken). */
  take(key: string, spec: BucketSpec, cost = 1): number {
    if (spec.perSecond <= 0) return 0;
    const bucket = this.refilled(key, spec);
    if (bucket.tokens >= cost) {
      bucket.tokens -= cost;
      return 0;
    }
    return Math.max(1, waitMs(cost - bucket.tokens, spec));
  }

  /** Always takes `cost` (going into debt): the milliseconds to wait before using them, for throttling a stream. */
  borrow(key: string, spec: BucketSpec, cost: number): number {
    if (spec.perSecond <= 0) return 0;
    const bucket = this.refilled(key, spec);
    bucket.tokens -= cost;
    return bucket.tokens >= 0 ? 0 : waitMs(-bucket.tokens, spec);
  }

  get size(): number {
    return this.buckets.size;
  }

  private refilled(key: string, spec: BucketSpec): Bucket {
    const now = this.clock();
    let bucket = this.buckets.get(key);
    if (!bucket) {
      if (this.buckets.size >= SWEEP_ABOVE) this.sweep(now);
      bucket = { tokens: spec.burstCount, at: now, spec };
      this.buckets.set(key, bucket);
      return bucket;
    }
    bucket.tokens = Math.min(spec.burstCount, bucket.tokens + ((now - bucket.at) / 1000) * spec.perSecond);
    bucket.at = now;
    return bucket;
  }

  private sweep(now: number): void {
    for (const [key, b] of this.buckets) {
      if (b.tokens + ((now - b.at) / 1000) * b.spec.perSecond >= b.spec.burstCount) this.buckets.delete(key);
    }
  }
}

/** Whole milliseconds until `missing` tokens have flowed in; float dust (1.0000000002 ms) is not a millisecond more. */
function waitMs(missing: number, spec: BucketSpec): number {
  return Math.ceil((missing / spec.perSecond) * 1000 - 1e-6);
}
