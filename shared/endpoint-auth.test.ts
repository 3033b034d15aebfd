import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import {
  bearerToken,
  EndpointAuthorizer,
  type Access,
  type EndpointReviewer,
  type TokenReviewOutcome,
} from './endpoint-auth.js';

describe('bearerToken', () => {
  it.each([
    [{ authorization: 'Bearer abc' }, 'abc'],
    [{ authorization: 'bearer abc ' }, 'abc'],
    [{ 'x-noma-authorization': 'Bearer via-proxy' }, 'via-proxy'],
    [{ authorization: 'Bearer direct', 'x-noma-authorization': 'Bearer proxied' }, 'direct'],
    [{ authorization: 'Basic dXNlcjpwdw==', 'x-noma-authorization': 'Bearer p' }, 'p'],
    [{ authorization: ['Bearer first', 'Bearer second'] }, 'first'],
    [{ authorization: 'Basic dXNlcjpwdw==' }, undefined],
    [{ authorization: 'Bearer' }, undefined],
    [{ authorization: 'Bearer a b' }, undefined],
    [{}, undefined],
  ])('%j: %s', (headers, want) => {
    expect(bearerToken(headers)).toBe(want);
  });
});

/** The API server's answers, by token: who it is (or not), and which paths it may get. */
class FakeApiServer implements EndpointReviewer {
  tokenReviews = 0;
  accessReviews = 0;
  /** Set: every review waits for this. */
  gate: Promise<void> | undefined;
  failWith: Error | undefined;
  constructor(private readonly users: Record<string, { name: string; paths: string[] }>) {}

  async reviewToken(token: string): Promise<TokenReviewOutcome> {
    this.tokenReviews++;
    await this.gate;
    if (this.failWith !== undefined) throw this.failWith;
    const user = this.users[token];
    return user === undefined
      ? { authenticated: false, error: 'invalid bearer token' }
      : { authenticated: true, user: { username: user.name, groups: ['g'] } };
  }

  async mayGet(user: NonNullable<TokenReviewOutcome['user']>, path: string): Promise<Access> {
    this.accessReviews++;
    await Promise.resolve();
    const paths = Object.values(this.users).find((u) => u.name === user.username)?.paths ?? [];
    return paths.includes(path) ? { allowed: true } : { allowed: false, reason: 'no RBAC rule' };
  }
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

function setup(
  opts: { maxEntries?: number; maxInFlight?: number; onError?: (err: unknown) => void } = {},
) {
  const api = new FakeApiServer({
    reader: { name: 'system:serviceaccount:monitoring:prometheus', paths: ['/metrics', '/agents'] },
    nobody: { name: 'system:serviceaccount:default:default', paths: [] },
  });
  const clock = { now: 1_000 };
  const auth = new EndpointAuthorizer({ reviewer: api, now: () => clock.now, ...opts });
  return { api, clock, auth };
}

describe('EndpointAuthorizer', () => {
  it('401 without a token (no API call), or with one the API server does not accept', async () => {
    const { api, auth } = setup();
    expect(await auth.check({}, '/metrics')).toMatchObject({ code: 401 });
    expect(api.tokenReviews).toBe(0);
    const refused = await auth.check(bearer('junk'), '/metrics');
    expect(refused).toEqual({ code: 401, message: 'token not accepted: invalid bearer token' });
    expect(api.accessReviews).toBe(0);
  });

  it('403 naming the user and the path when RBAC does not allow it; 200 when it does', async () => {
    const { auth } = setup();
    expect(await auth.check(bearer('nobody'), '/agents')).toEqual({
      code: 403,
      message: 'system:serviceaccount:default:default may not get /agents: no RBAC rule',
    });
    expect(await auth.check(bearer('reader'), '/agents')).toEqual({
      code: 200,
      user: 'system:serviceaccount:monitoring:prometheus',
    });
  });

  it('reuses a decision for its TTL, per token and path, then asks again', async () => {
    const { api, auth, clock } = setup();
    for (let i = 0; i < 5; i++) await auth.check(bearer('reader'), '/metrics');
    await auth.check(bearer('nobody'), '/metrics');
    await auth.check(bearer('nobody'), '/metrics');
    expect(api.tokenReviews).toBe(2);
    await auth.check(bearer('reader'), '/agents');
    expect(api.tokenReviews).toBe(3);
    clock.now += 9_999;
    await auth.check(bearer('reader'), '/metrics');
    expect(api.tokenReviews).toBe(3);
    clock.now += 1;
    await auth.check(bearer('reader'), '/metrics');
    expect(api.tokenReviews).toBe(4);
  });

  it('keeps at most maxEntries refusals, dropping the oldest, and junk never pushes out an allowed token', async () => {
    const { api, auth } = setup({ maxEntries: 2 });
    await auth.check(bearer('reader'), '/metrics');
    await auth.check(bearer('nobody'), '/metrics');
    await auth.check(bearer('junk-1'), '/metrics');
    await auth.check(bearer('junk-2'), '/metrics');
    expect(api.tokenReviews).toBe(4);
    await auth.check(bearer('junk-2'), '/metrics');
    await auth.check(bearer('junk-1'), '/metrics');
    await auth.check(bearer('reader'), '/metrics');
    expect(api.tokenReviews).toBe(4);
    await auth.check(bearer('nobody'), '/metrics');
    expect(api.tokenReviews).toBe(5);
  });

  it('does not cache a failed review: the API server away is 503, and the next request asks again', async () => {
    const errors: unknown[] = [];
    const { api, auth } = setup({ onError: (err) => errors.push(err) });
    api.failWith = new Error('connect ECONNREFUSED 10.0.0.1:6443');
    // The caller learns nothing of the API server; the log does.
    expect(await auth.check(bearer('reader'), '/metrics')).toEqual({
      code: 503,
      message: 'cannot review the token now; try again',
    });
    expect(errors).toEqual([api.failWith]);
    api.failWith = undefined;
    expect(await auth.check(bearer('reader'), '/metrics')).toMatchObject({ code: 200 });
    expect(api.tokenReviews).toBe(2);
  });

  it('shares one review among concurrent requests with the same token, and caps reviews in flight', async () => {
    const { api, auth } = setup({ maxInFlight: 3 });
    let open = (): void => undefined;
    api.gate = new Promise((r) => (open = r));
    const same = Array.from({ length: 10 }, () => auth.check(bearer('reader'), '/metrics'));
    const junk = Array.from({ length: 10 }, (_, i) => auth.check(bearer(`junk-${i}`), '/metrics'));
    await Promise.resolve();
    expect(api.tokenReviews).toBe(3);
    open();
    const verdicts = await Promise.all([...same, ...junk]);
    expect(verdicts.slice(0, 10).every((v) => v.code === 200)).toBe(true);
    const codes = verdicts.slice(10).map((v) => v.code);
    expect(codes.filter((c) => c === 401)).toHaveLength(2);
    expect(codes.filter((c) => c === 503)).toHaveLength(8);
    expect(auth.busy).toBe(8);
    expect(api.tokenReviews).toBe(3);
  });

  it('counts reviews by result in noma_endpoint_reviews_total, cache hits not', async () => {
    const registry = new Registry();
    const api = new FakeApiServer({ reader: { name: 'r', paths: ['/metrics'] } });
    const auth = new EndpointAuthorizer({ reviewer: api, registry });
    for (let i = 0; i < 3; i++) await auth.check(bearer('reader'), '/metrics');
    await auth.check(bearer('reader'), '/agents');
    await auth.check(bearer('junk'), '/metrics');
    const text = await registry.metrics();
    expect(text).toMatch(/^noma_endpoint_reviews_total\{result="allowed"\} 1$/m);
    expect(text).toMatch(/^noma_endpoint_reviews_total\{result="forbidden"\} 1$/m);
    expect(text).toMatch(/^noma_endpoint_reviews_total\{result="unauthenticated"\} 1$/m);
  });
});
