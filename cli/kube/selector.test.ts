import { describe, expect, it } from 'vitest';
import { hostnameSelector, selectorError } from './selector.js';

describe('selectorError', () => {
  it.each([
    'gpu.h100=true',
    'together.ai/role=gpu',
    'a==b',
    'a!=b',
    'a=',
    'gpu.count',
    '!noma.dev/selected-for',
    'kubernetes.io/hostname in (gpu-01,gpu-02)',
    'tier notin ( standard , dual-gpu ),gpu.count>1',
    'a=b, c in (d), !e',
  ])('accepts %s', (sel) => {
    expect(selectorError(sel)).toBeUndefined();
  });

  it.each([
    ['', 'empty'],
    ['a=b,', 'empty requirement'],
    ['gpu in h100', 'not a label selector requirement'],
    ['a in ()', 'empty'],
    ['a>b', 'integer'],
    ['Bad Key=1', 'not a label selector requirement'],
    ['a=b c', 'not a label selector requirement'],
    ['x=' + 'v'.repeat(64), 'at most 63'],
    ['UPPER.example/x=1', 'prefix'],
  ])('rejects %j', (sel, why) => {
    expect(selectorError(sel)).toContain(why);
  });
});

describe('hostnameSelector', () => {
  it('selects the named nodes by hostname label', () => {
    expect(hostnameSelector(['gpu-01', 'gpu-02'])).toBe(
      'kubernetes.io/hostname in (gpu-01,gpu-02)',
    );
  });
});
