import { describe, expect, it } from 'vitest';
import { retry, retryOnConflict } from './retry.js';
import { describeApiError, isConnectionError, isTransient, statusCode } from './kube-errors.js';

const apiError = (code: number) => Object.assign(new Error(`HTTP ${String(code)}`), { code });

describe('retry', () => {
  it('retries transient errors until the call succeeds', async () => {
    let calls = 0;
    const out = await retry(
      () => {
        calls++;
        if (calls < 3) return Promise.reject(apiError(503));
        return Promise.resolve('ok');
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
        () => {
          calls++;
          return Promise.reject(apiError(403));
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
        (attempt) => {
          return Promise.reject(apiError(500 + attempt));
        },
        { baseMs: 1, maxMs: 2, attempts: 3, onRetry: (_e, a) => seen.push(a) },
      ),
    ).rejects.toMatchObject({ code: 502 });
    expect(seen).toEqual([0, 1]);
  });

  it('starts the count over after an attempt that made progress', async () => {
    let calls = 0;
    const out = await retry(
      () => {
        calls++;
        if (calls < 6) return Promise.reject(apiError(500));
        return Promise.resolve(calls);
      },
      // Every other failed attempt got somewhere: never 3 failures in a row.
      { baseMs: 1, maxMs: 1, attempts: 3, progressed: () => calls % 2 === 0 },
    );
    expect(out).toBe(6);
    await expect(
      retry(
        () => {
          return Promise.reject(apiError(500));
        },
        { baseMs: 1, maxMs: 1, attempts: 3, progressed: () => false },
      ),
    ).rejects.toMatchObject({ code: 500 });
  });

  it('stops waiting when the signal aborts, with the error that made it wait', async () => {
    const ac = new AbortController();
    setTimeout(() => {
      ac.abort();
    }, 20);
    const started = Date.now();
    await expect(
      retry(
        () => {
          return Promise.reject(apiError(500));
        },
        { baseMs: 10_000, maxMs: 10_000, signal: ac.signal },
      ),
    ).rejects.toMatchObject({ code: 500 });
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe('retryOnConflict', () => {
  it('redoes a lost race at once, on a fresh read, until the write goes through', async () => {
    const reads: number[] = [];
    let version = 1;
    const started = Date.now();
    const written = await retryOnConflict(
      (attempt) => {
        reads.push(version);
        const seen = version;
        if (attempt < 2) version++; // another writer got in between
        if (seen !== version) return Promise.reject(apiError(409));
        return Promise.resolve(seen);
      },
      { attempts: 5 },
    );
    expect(written).toBe(3);
    expect(reads).toEqual([1, 2, 3]);
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('throws the last conflict when the attempts are used up', async () => {
    let calls = 0;
    await expect(
      retryOnConflict(
        () => {
          calls++;
          return Promise.reject(apiError(409));
        },
        { attempts: 4 },
      ),
    ).rejects.toMatchObject({ code: 409 });
    expect(calls).toBe(4);
  });

  it('does not redo anything but a conflict, not even a transient error', async () => {
    let calls = 0;
    await expect(
      retryOnConflict(
        () => {
          calls++;
          return Promise.reject(apiError(503));
        },
        { attempts: 4 },
      ),
    ).rejects.toMatchObject({ code: 503 });
    expect(calls).toBe(1);
  });

  it('waits between conflicts when asked to', async () => {
    const delays: number[] = [];
    await expect(
      retryOnConflict(
        () => {
          return Promise.reject(apiError(409));
        },
        { attempts: 3, baseMs: 10, maxMs: 20, onRetry: (_e, _a, d) => delays.push(d) },
      ),
    ).rejects.toMatchObject({ code: 409 });
    expect(delays).toHaveLength(2);
    expect(delays[0]).toBeGreaterThanOrEqual(8);
    expect(delays[1]).toBeGreaterThanOrEqual(16);
  });

  it('stops at once when the signal has aborted', async () => {
    const ac = new AbortController();
    let calls = 0;
    await expect(
      retryOnConflict(
        () => {
          calls++;
          ac.abort(new Error('stopped'));
          return Promise.reject(apiError(409));
        },
        { attempts: 10, signal: ac.signal },
      ),
    ).rejects.toMatchObject({ code: 409 });
    expect(calls).toBe(1);
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
    [Object.assign(new Error('Premature close'), { name: 'FetchError' }), true],
    [apiError(504), true],
    [apiError(401), false],
    [new TypeError('x is undefined'), false],
    [new Error('Notify action without notify body'), false],
    ['a string', false],
    [undefined, false],
  ])('isTransient(%o) is %s', (err, expected) => {
    expect(isTransient(err)).toBe(expected);
  });

  it('reads the status code only from a number', () => {
    expect(statusCode(apiError(404))).toBe(404);
    expect(statusCode({ code: 'ENOENT' })).toBeUndefined();
    expect(statusCode({ statusCode: 410 })).toBe(410); // client-node's Watch
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
