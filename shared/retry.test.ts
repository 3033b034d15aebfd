import { describe, expect, it } from 'vitest';
import { retry } from './retry.js';
import { describeApiError, isConnectionError, isTransient, statusCode } from './kube-errors.js';

const apiError = (code: number) => Object.assign(new Error(`HTTP ${String(code)}`), { code });

describe('retry', () => {
  it('retries transient errors until the call succeeds', async () => {
    let calls = 0;
    const out = await retry(
      async () => {
        calls++;
        if (calls < 3) throw apiError(503);
        return 'ok';
      },
      { baseMs: 1, maxMs: 2 },
    );
    expect(out).toBe('ok');
    expect(calls).toBe(3);
  });

  it('does not retry a refusal', async () => {
    let calls = 0;
    await expect(
      retry(
        async () => {
          calls++;
          throw apiError(403);
        },
        { baseMs: 1, maxMs: 2 },
      ),
    ).rejects.toMatchObject({ code: 403 });
    expect(calls).toBe(1);
  });

  it('stops after the attempts and throws the last error', async () => {
    const seen: number[] = [];
    await expect(
      retry(
        async (attempt) => {
          throw apiError(500 + attempt);
        },
        { baseMs: 1, maxMs: 2, attempts: 3, onRetry: (_e, a) => seen.push(a) },
      ),
    ).rejects.toMatchObject({ code: 502 });
    expect(seen).toEqual([0, 1]);
  });

  it('stops waiting when the signal aborts, with the error that made it wait', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 20);
    const started = Date.now();
    await expect(
      retry(
        async () => {
          throw apiError(500);
        },
        { baseMs: 10_000, maxMs: 10_000, signal: ac.signal },
      ),
    ).rejects.toMatchObject({ code: 500 });
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe('kube errors', () => {
  it.each([
    [apiError(409), true],
    [apiError(429), true],
    [apiError(500), true],
    [apiError(503), true],
    [apiError(400), false],
    [apiError(403), false],
    [apiError(404), false],
    [apiError(422), false],
    [Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }), true],
    [Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNRESET' } }), true],
    [Object.assign(new Error('aborted'), { name: 'AbortError' }), true],
    [new TypeError('x is undefined'), false],
    ['a string', false],
    [undefined, false],
  ])('isTransient(%o) is %s', (err, expected) => {
    expect(isTransient(err)).toBe(expected);
  });

  it('reads the status code only from a number', () => {
    expect(statusCode(apiError(404))).toBe(404);
    expect(statusCode({ code: 'ENOENT' })).toBeUndefined();
    expect(statusCode(null)).toBeUndefined();
    expect(isConnectionError(apiError(500))).toBe(false);
  });

  it('describes an API error by its Status body', () => {
    const err = Object.assign(new Error('HTTP-Code: 422'), {
      code: 422,
      body: JSON.stringify({ reason: 'Invalid', message: 'spec.x: Invalid value' }),
    });
    expect(describeApiError(err)).toBe('422 Invalid: spec.x: Invalid value');
    expect(describeApiError(new Error('boom'))).toBe('boom');
  });
});
