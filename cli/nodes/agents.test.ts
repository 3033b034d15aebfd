import { describe, expect, it } from 'vitest';
import { UsageError } from '../errors.js';
import { isStandby, parseCoordinatorRef } from './agents.js';

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
