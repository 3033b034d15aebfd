import { describe, expect, it } from 'vitest';
import { UsageError } from '../errors.js';
import { isStandby, parseCoordinatorRef, readerNamespace, refusalText } from './agents.js';

describe('parseCoordinatorRef', () => {
  it.each([
    ['http://127.0.0.1:8080', { kind: 'url', url: 'http://127.0.0.1:8080' }],
    ['https://coord.example/', { kind: 'url', url: 'https://coord.example' }],
    ['noma-coordinator', { kind: 'lease', namespace: 'noma-system', name: 'noma-coordinator' }],
    ['ops/noma-lease', { kind: 'lease', namespace: 'ops', name: 'noma-lease' }],
  ])('%s', (text, want) => {
    expect(parseCoordinatorRef(text)).toEqual(want);
  });

  it.each(['', 'a/b/c', 'Upper/x', 'ftp://x', '/lease'])('refuses %j', (text) => {
    expect(() => parseCoordinatorRef(text)).toThrow(UsageError);
  });
});

describe('isStandby', () => {
  it("reads the coordinator's /readyz role", () => {
    expect(isStandby({ ready: true, role: 'standby' })).toBe(true);
    expect(isStandby({ ready: true, role: 'leader', informerFresh: true })).toBe(false);
    expect(isStandby(undefined)).toBe(false);
    expect(isStandby(null)).toBe(false);
    expect(isStandby('standby')).toBe(false);
  });
});

describe('readerNamespace', () => {
  it("is the Lease's namespace, or noma-system for a URL", () => {
    expect(readerNamespace({ kind: 'lease', namespace: 'ops', name: 'l' })).toBe('ops');
    expect(readerNamespace({ kind: 'url', url: 'http://127.0.0.1:8080' })).toBe('noma-system');
  });
});

describe('refusalText', () => {
  const minted = { token: 't' };
  const none = {
    why: 'no token for ops/noma-metrics-reader: HTTP 403: forbidden',
    namespace: 'ops',
  };

  it.each([
    [
      403,
      'u may not get /agents',
      minted,
      "HTTP 403: u may not get /agents (bind the token's identity to the ClusterRole noma-metrics-reader)",
    ],
    [401, 'token not accepted', minted, 'HTTP 401: token not accepted (pass a valid --token)'],
    [
      401,
      'a bearer token is needed',
      none,
      'HTTP 401: a bearer token is needed (no token for ops/noma-metrics-reader: HTTP 403: forbidden; pass --token (e.g. `kubectl create token -n ops noma-metrics-reader`))',
    ],
  ])('%i %j', (code, reason, cred, want) => {
    expect(refusalText(code, reason, cred)).toBe(want);
  });

  it("says nothing of what is not the coordinator's refusal", () => {
    // The API server refusing the pod proxy gives no reason header.
    expect(refusalText(403, undefined, minted)).toBeUndefined();
    expect(refusalText(500, 'boom', minted)).toBeUndefined();
  });

  it('bounds what the coordinator said', () => {
    expect(refusalText(403, 'x'.repeat(5000), minted)?.length).toBeLessThan(400);
  });
});
