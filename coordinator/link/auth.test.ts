import { describe, expect, it } from 'vitest';
import {
  authenticateAgent,
  checkReview,
  EXTRA_NODE,
  EXTRA_POD,
  EXTRA_POD_UID,
  screenToken,
  tokenClaims,
  tokenExpiresAt,
} from './auth.js';

/** A JWT with these claims (the signature is nobody's: only the TokenReview checks it). */
const jwt = (claims: Record<string, unknown>): string =>
  [{ alg: 'RS256' }, claims, 'sig']
    .map((p) => (typeof p === 'string' ? p : Buffer.from(JSON.stringify(p)).toString('base64url')))
    .join('.');
const AGENT_SUB = 'system:serviceaccount:noma-system:noma-agent';
const agentToken = (extra: Record<string, unknown> = {}) =>
  jwt({ aud: ['noma.dev'], sub: AGENT_SUB, exp: 2_000_000_000, ...extra });

const expect_ = { audience: 'noma.dev', serviceAccount: 'noma-system/noma-agent' };
const user = (
  extra: Record<string, string[]>,
  username = 'system:serviceaccount:noma-system:noma-agent',
) => ({
  authenticated: true,
  audiences: ['noma.dev'],
  user: { username, extra },
});

describe('checkReview', () => {
  it('takes the node from the bound token', () => {
    expect(checkReview(user({ [EXTRA_NODE]: ['gpu-01'] }), expect_)).toEqual({
      kind: 'node',
      node: 'gpu-01',
      username: AGENT_SUB,
    });
  });
  it('keeps the pod of a token that names its node too', () => {
    const extra = { [EXTRA_NODE]: ['gpu-01'], [EXTRA_POD]: ['agent-x'], [EXTRA_POD_UID]: ['u1'] };
    expect(checkReview(user(extra), expect_)).toMatchObject({
      kind: 'node',
      node: 'gpu-01',
      pod: { namespace: 'noma-system', name: 'agent-x', uid: 'u1' },
    });
  });
  it('falls back to the bound pod', () => {
    expect(
      checkReview(user({ [EXTRA_POD]: ['agent-x'], [EXTRA_POD_UID]: ['u1'] }), expect_),
    ).toMatchObject({
      kind: 'pod',
      pod: 'agent-x',
      uid: 'u1',
      namespace: 'noma-system',
    });
  });
  it.each([
    ['unauthenticated', { authenticated: false, error: 'bad' }, 401],
    ['another audience', { ...user({}), audiences: ['api'] }, 401],
    ['another account', user({ [EXTRA_NODE]: ['n'] }, 'system:serviceaccount:x:noma-agent'), 403],
    ['an unbound token', user({}), 403],
  ])('refuses %s', (_n, status, code) => {
    expect(checkReview(status, expect_)).toMatchObject({ kind: 'refused', status: code });
  });
});

describe('authenticateAgent', () => {
  const review = () => Promise.resolve(user({ [EXTRA_POD]: ['agent-x'], [EXTRA_POD_UID]: ['u1'] }));
  it('binds to the pod’s node, with the pod and the token’s expiry', async () => {
    const r = await authenticateAgent(agentToken({ exp: 1_900_000_000 }), expect_, {
      review,
      readPod: () =>
        Promise.resolve({ metadata: { uid: 'u1' }, spec: { nodeName: 'gpu-07', containers: [] } }),
    });
    expect(r).toEqual({
      ok: true,
      identity: {
        node: 'gpu-07',
        username: AGENT_SUB,
        pod: { namespace: 'noma-system', name: 'agent-x', uid: 'u1' },
        expiresAt: 1_900_000_000_000,
      },
    });
  });
  it('refuses a token of an earlier pod with the same name', async () => {
    const r = await authenticateAgent(agentToken(), expect_, {
      review,
      readPod: () =>
        Promise.resolve({ metadata: { uid: 'u2' }, spec: { nodeName: 'gpu-07', containers: [] } }),
    });
    expect(r).toMatchObject({ ok: false, status: 403 });
  });
});

describe('screening before a TokenReview', () => {
  let reviews = 0;
  const deps = {
    review: () => {
      reviews++;
      return Promise.resolve(user({ [EXTRA_NODE]: ['n'] }));
    },
    readPod: () => Promise.resolve(undefined),
  };
  it.each([
    ['random text', 'c29tZSBqdW5r', 401, /not a ServiceAccount token/],
    ['a JWT whose payload is not JSON', 'a.b.c', 401, /not a ServiceAccount token/],
    ['another audience', jwt({ aud: ['api'], sub: AGENT_SUB }), 401, /audience noma.dev/],
    [
      'another subject',
      jwt({ aud: 'noma.dev', sub: 'system:anonymous' }),
      403,
      /agent ServiceAccount/,
    ],
  ])('refuses %s without asking the API server', async (_n, token, status, why) => {
    reviews = 0;
    const r = await authenticateAgent(token, expect_, deps);
    expect(r).toMatchObject({ ok: false, status });
    expect((r as { reason: string }).reason).toMatch(why);
    expect(reviews).toBe(0);
  });
  it('asks about a token that looks like the agent’s (aud as a string too)', async () => {
    reviews = 0;
    const r = await authenticateAgent(jwt({ aud: 'noma.dev', sub: AGENT_SUB }), expect_, deps);
    expect(r).toMatchObject({ ok: true, identity: { node: 'n' } });
    expect(reviews).toBe(1);
    expect(screenToken(tokenClaims(agentToken()), expect_)).toBeUndefined();
  });
});

describe('tokenExpiresAt', () => {
  it.each([
    ['exp', { exp: 100 }, 100_000],
    [
      'warnafter before exp (an extended token)',
      { exp: 900, 'kubernetes.io': { warnafter: 200 } },
      200_000,
    ],
    ['exp before warnafter', { exp: 100, 'kubernetes.io': { warnafter: 200 } }, 100_000],
    ['none', {}, undefined],
    ['a non-numeric exp', { exp: 'soon' }, undefined],
  ])('%s', (_n, claims, want) => {
    expect(tokenExpiresAt(tokenClaims(jwt(claims)))).toBe(want);
  });
  it('is unknown for what is not a JWT', () => {
    expect(tokenExpiresAt(tokenClaims('nope'))).toBeUndefined();
  });
});
