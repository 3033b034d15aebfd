import { describe, expect, it } from 'vitest';
import { authenticateAgent, checkReview, EXTRA_NODE, EXTRA_POD, EXTRA_POD_UID } from './auth.js';

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
    expect(checkReview(user({ [EXTRA_NODE]: ['gpu-01'] }), expect_)).toMatchObject({
      kind: 'node',
      node: 'gpu-01',
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
  it('binds to the pod’s node', async () => {
    const r = await authenticateAgent('t', expect_, {
      review,
      readPod: () =>
        Promise.resolve({ metadata: { uid: 'u1' }, spec: { nodeName: 'gpu-07', containers: [] } }),
    });
    expect(r).toEqual({
      ok: true,
      identity: expect.objectContaining({ node: 'gpu-07' }) as unknown,
    });
  });
  it('refuses a token of an earlier pod with the same name', async () => {
    const r = await authenticateAgent('t', expect_, {
      review,
      readPod: () =>
        Promise.resolve({ metadata: { uid: 'u2' }, spec: { nodeName: 'gpu-07', containers: [] } }),
    });
    expect(r).toMatchObject({ ok: false, status: 403 });
  });
});
