// What an agent link upgrade may cost before anyone knows who sent it: each source address
// gets a token bucket (a rate with bursts), and at most `maxAuthenticating` upgrades wait for a
// TokenReview at once. Over either limit the upgrade is answered 503 at once; a connection that
// is up is never touched. The buckets are bounded too, so many sources cannot grow the heap.

export interface GateLimits {
  /** Upgrades waiting for authentication at once, all sources together. */
  readonly maxAuthenticating: number;
  /** Upgrades per second from one source address, on average. */
  readonly ratePerSecond: number;
  /** Upgrades from one source address in a burst (the bucket's size). */
  readonly burst: number;
  /** Buckets kept at most; full buckets are dropped first (they equal no bucket). */
  readonly maxSources?: number;
}

export interface Bucket {
  readonly tokens: number;
  /** ms of the last refill */
  readonly at: number;
}

/** Pure: the bucket at `now`, refilled at `rate` per second up to `burst`. */
export function refill(
  bucket: Bucket | undefined,
  now: number,
  rate: number,
  burst: number,
): Bucket {
  if (bucket === undefined) return { tokens: burst, at: now };
  const elapsed = Math.max(0, now - bucket.at) / 1000;
  return { tokens: Math.min(burst, bucket.tokens + elapsed * rate), at: now };
}

/**
 * Pure: take one token. `retryAfterS`: whole seconds until one is there, for Retry-After.
 */
export function take(
  bucket: Bucket | undefined,
  now: number,
  rate: number,
  burst: number,
): { ok: boolean; bucket: Bucket; retryAfterS: number } {
  const b = refill(bucket, now, rate, burst);
  if (b.tokens >= 1) return { ok: true, bucket: { ...b, tokens: b.tokens - 1 }, retryAfterS: 0 };
  return { ok: false, bucket: b, retryAfterS: Math.max(1, Math.ceil((1 - b.tokens) / rate)) };
}

/** `::ffff:10.0.0.1` and `10.0.0.1` are one source. */
export function sourceKey(address: string | undefined): string {
  const a = address ?? '';
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

export type Admission =
  { ok: true; release: () => void } | { ok: false; reason: 'rate' | 'busy'; retryAfterS: number };

const DEFAULT_MAX_SOURCES = 10_000;

export class UpgradeGate {
  private readonly buckets = new Map<string, Bucket>();
  private authenticating = 0;

  constructor(
    private readonly limits: GateLimits,
    private readonly now: () => number = Date.now,
  ) {}

  /** Upgrades waiting for authentication now. */
  get inFlight(): number {
    return this.authenticating;
  }

  /** One upgrade from `source`: counts against its rate. */
  rate(source: string): { ok: true } | { ok: false; retryAfterS: number } {
    const key = sourceKey(source);
    const { ratePerSecond, burst } = this.limits;
    const t = take(this.buckets.get(key), this.now(), ratePerSecond, burst);
    // Delete and set: the Map's order is then least recently used first, for eviction.
    this.buckets.delete(key);
    this.buckets.set(key, t.bucket);
    this.bound();
    return t.ok ? { ok: true } : { ok: false, retryAfterS: t.retryAfterS };
  }

  /** A slot to authenticate in; `release` it when the authentication is over (idempotent). */
  acquire(): Admission {
    if (this.authenticating >= this.limits.maxAuthenticating) {
      return { ok: false, reason: 'busy', retryAfterS: 1 };
    }
    this.authenticating++;
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        this.authenticating--;
      },
    };
  }

  private bound(): void {
    const max = this.limits.maxSources ?? DEFAULT_MAX_SOURCES;
    if (this.buckets.size <= max) return;
    const now = this.now();
    const { ratePerSecond, burst } = this.limits;
    for (const [key, b] of this.buckets) {
      if (refill(b, now, ratePerSecond, burst).tokens >= burst) this.buckets.delete(key);
    }
    // All still draining (many sources at once): the least recently seen go, a tenth more
    // than needed so that the next sources do not scan again at once.
    for (const key of this.buckets.keys()) {
      if (this.buckets.size <= Math.floor(max * 0.9)) break;
      this.buckets.delete(key);
    }
  }

  /** Buckets kept (for the tests: bounded). */
  get sources(): number {
    return this.buckets.size;
  }
}
