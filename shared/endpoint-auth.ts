// Who may read an HTTP endpoint that is not for probes (/metrics, the coordinator's /agents):
// the caller's bearer token must pass a TokenReview, and its user a SubjectAccessReview for the
// endpoint as a non-resource URL (verb get), the way kube-rbac-proxy guards a metrics port.
// Decisions are cached briefly, so that a Prometheus scrape every few seconds costs no API
// calls after the first, and the number of reviews in flight is capped, so that a flood of
// junk tokens cannot turn into a flood of API calls.
import { createHash } from 'node:crypto';
import { Counter, type Registry } from 'prom-client';

/** Messages go into HTTP bodies and logs: bounded, whatever the API server said. */
const bounded = (text: string, max: number): string =>
  text.length > max ? `${text.slice(0, max - 1)}…` : text;

/** The API server's verdict on a token (a TokenReview's status, the parts used here). */
export interface TokenReviewOutcome {
  readonly authenticated?: boolean;
  readonly error?: string;
  readonly user?: {
    readonly username?: string;
    readonly uid?: string;
    readonly groups?: string[];
    readonly extra?: Record<string, string[]>;
  };
}

export interface EndpointReviewer {
  /** TokenReview with the API server's own audiences (no `spec.audiences`). */
  reviewToken(token: string): Promise<TokenReviewOutcome | undefined>;
  /** SubjectAccessReview: may `user` `get` the non-resource URL `path`? */
  mayGet(user: NonNullable<TokenReviewOutcome['user']>, path: string): Promise<Access>;
}

export interface Access {
  readonly allowed: boolean;
  readonly reason?: string;
}

export type Verdict =
  | { readonly code: 200; readonly user: string }
  | { readonly code: 401 | 403 | 503; readonly message: string };

/**
 * The API server's pod proxy drops the Authorization header (it authenticated the caller for
 * itself), so a client that comes through it (`noma nodes`) sends its token in this one, which
 * the proxy forwards. Authorization wins when both are there.
 */
export const PROXIED_AUTH_HEADER = 'x-noma-authorization';

/** Pure: the bearer token of a request, from Authorization or else X-Noma-Authorization. */
export function bearerToken(
  headers: Record<string, string | string[] | undefined>,
): string | undefined {
  for (const name of ['authorization', PROXIED_AUTH_HEADER]) {
    const value = headers[name];
    const text = Array.isArray(value) ? value[0] : value;
    const m = text === undefined ? null : /^Bearer +(\S+) *$/i.exec(text);
    if (m?.[1] !== undefined) return m[1];
  }
  return undefined;
}

export interface EndpointAuthOptions {
  readonly reviewer: EndpointReviewer;
  /** How long a decision (allowed, unauthenticated or forbidden) is reused. Default 10 s. */
  readonly ttlMs?: number;
  /**
   * At most this many allowed decisions are kept, and as many refusals, the oldest going first:
   * a flood of junk tokens cannot push Prometheus' token out.
   */
  readonly maxEntries?: number;
  /** At most this many reviews at once; beyond, 503 without an API call. Default 16. */
  readonly maxInFlight?: number;
  readonly now?: () => number;
  /** Set: noma_endpoint_reviews_total{result} is registered here. */
  readonly registry?: Registry;
  /** A review that failed (the API server away): logged there, not told to the caller. */
  readonly onError?: (err: unknown) => void;
}

const RESULT = { 200: 'allowed', 401: 'unauthenticated', 403: 'forbidden', 503: 'error' } as const;

/** Where a review came out (cached as it is; a failed API call is not cached). */
interface Entry {
  readonly verdict: Verdict;
  readonly until: number;
}

export class EndpointAuthorizer {
  private readonly allowed = new Map<string, Entry>();
  private readonly refused = new Map<string, Entry>();
  private readonly pending = new Map<string, Promise<Verdict>>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly maxInFlight: number;
  private readonly now: () => number;
  private readonly counter: Counter<'result'> | undefined;
  /** API reviews started, and requests turned away busy (also in the counter). */
  reviews = 0;
  busy = 0;

  constructor(private readonly opts: EndpointAuthOptions) {
    this.ttlMs = opts.ttlMs ?? 10_000;
    this.maxEntries = opts.maxEntries ?? 1024;
    this.maxInFlight = opts.maxInFlight ?? 16;
    this.now = opts.now ?? Date.now;
    this.counter =
      opts.registry === undefined
        ? undefined
        : new Counter({
            name: 'noma_endpoint_reviews_total',
            help:
              'Token reviews for /metrics and /agents (decisions not cached), by result; busy: ' +
              'refused with 503 because as many reviews as allowed were in flight',
            labelNames: ['result'],
            registers: [opts.registry],
          });
  }

  /** The verdict on a request for `path` carrying `headers`. Never throws. */
  async check(
    headers: Record<string, string | string[] | undefined>,
    path: string,
  ): Promise<Verdict> {
    const token = bearerToken(headers);
    if (token === undefined) {
      return { code: 401, message: 'a bearer token is needed (Authorization: Bearer TOKEN)' };
    }
    // The token itself is never kept, only its hash.
    const key = `${createHash('sha256').update(token).digest('hex')} ${path}`;
    const hit = this.allowed.get(key) ?? this.refused.get(key);
    if (hit !== undefined && hit.until > this.now()) return hit.verdict;
    this.allowed.delete(key);
    this.refused.delete(key);
    const inFlight = this.pending.get(key);
    if (inFlight !== undefined) return inFlight;
    if (this.pending.size >= this.maxInFlight) {
      this.busy++;
      this.counter?.inc({ result: 'busy' });
      return { code: 503, message: 'too many token reviews in flight; try again' };
    }
    const review = this.review(token, path).finally(() => this.pending.delete(key));
    this.pending.set(key, review);
    const verdict = await review;
    if (verdict.code !== 503) this.remember(key, verdict);
    return verdict;
  }

  private remember(key: string, verdict: Verdict): void {
    const cache = verdict.code === 200 ? this.allowed : this.refused;
    while (cache.size >= this.maxEntries) {
      const oldest = cache.keys().next().value;
      if (oldest === undefined) break;
      cache.delete(oldest);
    }
    cache.set(key, { verdict, until: this.now() + this.ttlMs });
  }

  /** One review through the API server, counted once however many requests wait on it. */
  private async review(token: string, path: string): Promise<Verdict> {
    this.reviews++;
    const verdict = await this.decide(token, path);
    this.counter?.inc({ result: RESULT[verdict.code] });
    return verdict;
  }

  private async decide(token: string, path: string): Promise<Verdict> {
    try {
      const status = await this.opts.reviewer.reviewToken(token);
      if (status?.authenticated !== true || status.user === undefined) {
        const why = status?.error === undefined ? '' : `: ${status.error}`;
        return { code: 401, message: bounded(`token not accepted${why}`, 256) };
      }
      const user = status.user;
      const access = await this.opts.reviewer.mayGet(user, path);
      const name = user.username ?? '';
      if (!access.allowed) {
        const why = access.reason === undefined || access.reason === '' ? '' : `: ${access.reason}`;
        return { code: 403, message: bounded(`${name} may not get ${path}${why}`, 256) };
      }
      return { code: 200, user: name };
    } catch (err) {
      this.opts.onError?.(err);
      return { code: 503, message: 'cannot review the token now; try again' };
    }
  }
}
