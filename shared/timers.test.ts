// Fake timers emulate Node's overflow (a delay above 2^31-1 ms fires after 1 ms), so a plain
// setTimeout fails these tests the way it fails in production.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MAX_TIMER_MS, setLongTimeout, sleepLong } from './timers.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('setLongTimeout', () => {
  it('the fake clock overflows a plain setTimeout as Node does (the test can fail)', () => {
    const fn = vi.fn();
    setTimeout(fn, 700 * HOUR);
    vi.advanceTimersByTime(1);
    expect(fn).toHaveBeenCalledOnce();
  });

  it('a 700h timer does not fire after 25 days, and fires at exactly 700h', () => {
    const fn = vi.fn();
    setLongTimeout(fn, 700 * HOUR);
    vi.advanceTimersByTime(25 * DAY);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(700 * HOUR - 25 * DAY - 1);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fn).toHaveBeenCalledOnce();
    vi.advanceTimersByTime(1000 * HOUR);
    expect(fn).toHaveBeenCalledOnce();
  });

  it.each([0, 1, 5_000, MAX_TIMER_MS, MAX_TIMER_MS + 1, 2 * MAX_TIMER_MS + 7])(
    'fires after exactly %d ms',
    (ms) => {
      const fn = vi.fn();
      setLongTimeout(fn, ms);
      if (ms > 0) vi.advanceTimersByTime(ms - 1);
      expect(fn).not.toHaveBeenCalled();
      vi.advanceTimersByTime(1);
      expect(fn).toHaveBeenCalledOnce();
    },
  );

  it('treats a negative or NaN delay as now, and Infinity as never', () => {
    const now = vi.fn();
    const nan = vi.fn();
    const never = vi.fn();
    setLongTimeout(now, -5);
    setLongTimeout(nan, Number.NaN);
    setLongTimeout(never, Number.POSITIVE_INFINITY);
    vi.advanceTimersByTime(1);
    expect(now).toHaveBeenCalledOnce();
    expect(nan).toHaveBeenCalledOnce();
    vi.advanceTimersByTime(10_000 * DAY);
    expect(never).not.toHaveBeenCalled();
  });

  it('clear stops it before the first chunk and between chunks', () => {
    const early = vi.fn();
    const late = vi.fn();
    setLongTimeout(early, 700 * HOUR).clear();
    const t = setLongTimeout(late, 700 * HOUR);
    vi.advanceTimersByTime(26 * DAY);
    t.clear();
    t.clear();
    vi.advanceTimersByTime(700 * HOUR);
    expect(early).not.toHaveBeenCalled();
    expect(late).not.toHaveBeenCalled();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('unref applies to the chained timers too', () => {
    const spy = vi.spyOn(globalThis, 'setTimeout');
    const t = setLongTimeout(() => undefined, 700 * HOUR).unref();
    const first = spy.mock.results[0]?.value as NodeJS.Timeout;
    expect(first.hasRef()).toBe(false);
    vi.advanceTimersByTime(MAX_TIMER_MS);
    const second = spy.mock.results[1]?.value as NodeJS.Timeout;
    expect(second).toBeDefined();
    expect(second.hasRef()).toBe(false);
    t.clear();
  });
});

describe('sleepLong', () => {
  it('resolves at 700h, not before', async () => {
    let done = false;
    const p = sleepLong(700 * HOUR).then(() => {
      done = true;
    });
    await vi.advanceTimersByTimeAsync(700 * HOUR - 1);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await p;
    expect(done).toBe(true);
  });

  it('resolves at once when the signal aborts, and leaves no timer behind', async () => {
    const ac = new AbortController();
    const p = sleepLong(700 * HOUR, ac.signal);
    ac.abort();
    await p;
    expect(vi.getTimerCount()).toBe(0);
    const aborted = AbortSignal.abort();
    await sleepLong(700 * HOUR, aborted);
    expect(vi.getTimerCount()).toBe(0);
  });
});
