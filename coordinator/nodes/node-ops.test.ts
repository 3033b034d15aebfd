import { describe, expect, it } from 'vitest';
import { isTransient } from './node-ops.js';

describe('isTransient', () => {
  it('retries what the API server may answer differently next time', () => {
    for (const code of [409, 429, 500, 503, 504]) expect(isTransient({ code })).toBe(true);
  });
  it('does not retry refusals', () => {
    for (const code of [400, 401, 403, 404, 422]) expect(isTransient({ code })).toBe(false);
  });
  it('retries connections that failed', () => {
    expect(isTransient(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }))).toBe(true);
    const cut = Object.assign(new Error('Premature close'), { name: 'FetchError' });
    expect(isTransient(cut)).toBe(true);
    const timedOut = Object.assign(new Error('The operation was aborted.'), { name: 'AbortError' });
    expect(isTransient(timedOut)).toBe(true);
  });
  it('does not retry bugs', () => {
    expect(isTransient(new TypeError('x is undefined'))).toBe(false);
    expect(isTransient(new Error('Notify action without notify body'))).toBe(false);
  });
});
