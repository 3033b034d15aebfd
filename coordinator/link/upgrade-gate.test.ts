import { describe, expect, it } from 'vitest';
import { refill, sourceKey, take, UpgradeGate } from './upgrade-gate.js';

describe('token bucket', () => {
  it.each([
    ['a new source starts full', undefined, 0, { tokens: 20, at: 0 }],
    ['refills at the rate', { tokens: 0, at: 0 }, 500, { tokens: 5, at: 500 }],
    ['never above the burst', { tokens: 19, at: 0 }, 10_000, { tokens: 20, at: 10_000 }],
    ['a clock going back refills nothing', { tokens: 3, at: 1000 }, 0, { tokens: 3, at: 0 }],
  ])('%s', (_n, bucket, now, want) => {
    expect(refill(bucket, now, 10, 20)).toEqual(want);
  });

  it.each([
    ['takes a token', { tokens: 2, at: 0 }, 10, true, 0],
    ['empty: retry after the next token', { tokens: 0, at: 0 }, 10, false, 1],
    ['half a token at 0.25/s: 2 s', { tokens: 0.5, at: 0 }, 0.25, false, 2],
  ])('%s', (_n, bucket, rate, ok, retryAfterS) => {
    const t = take(bucket, 0, rate, 20);
    expect(t.ok).toBe(ok);
    expect(t.retryAfterS).toBe(retryAfterS);
  });

  it('treats an IPv4-mapped address as the IPv4 one', () => {
    expect(sourceKey('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(sourceKey('fe80::1')).toBe('fe80::1');
    expect(sourceKey(undefined)).toBe('');
  });
});

describe('UpgradeGate', () => {
  it('lets a burst through per source, then the rate; other sources are not affected', () => {
    let now = 0;
    const gate = new UpgradeGate({ maxAuthenticating: 32, ratePerSecond: 2, burst: 3 }, () => now);
    const a = [1, 2, 3, 4].map(() => gate.rate('10.0.0.1').ok);
    expect(a).toEqual([true, true, true, false]);
    expect(gate.rate('10.0.0.2').ok).toBe(true);
    now = 500;
    expect(gate.rate('::ffff:10.0.0.1').ok).toBe(true);
    expect(gate.rate('10.0.0.1')).toEqual({ ok: false, retryAfterS: 1 });
  });

  it('admits at most maxAuthenticating at once; a release (once) frees a slot', () => {
    const gate = new UpgradeGate({ maxAuthenticating: 2, ratePerSecond: 1, burst: 1 });
    const one = gate.acquire();
    const two = gate.acquire();
    expect(gate.acquire()).toEqual({ ok: false, reason: 'busy', retryAfterS: 1 });
    expect(gate.inFlight).toBe(2);
    if (!one.ok || !two.ok) throw new Error('not admitted');
    one.release();
    one.release();
    expect(gate.inFlight).toBe(1);
    expect(gate.acquire().ok).toBe(true);
    expect(gate.acquire().ok).toBe(false);
  });

  it('keeps a bounded number of sources: full buckets go first, then the least recent', () => {
    let now = 0;
    const limits = { maxAuthenticating: 1, ratePerSecond: 1, burst: 2, maxSources: 100 };
    const gate = new UpgradeGate(limits, () => now);
    for (let i = 0; i < 1000; i++) gate.rate(`10.0.${Math.floor(i / 250)}.${i % 250}`);
    expect(gate.sources).toBeLessThanOrEqual(100);
    // A source that keeps coming stays limited while sources come and go around it.
    gate.rate('192.0.2.1');
    gate.rate('192.0.2.1');
    for (let i = 0; i < 50; i++) gate.rate(`198.51.100.${i}`);
    expect(gate.rate('192.0.2.1').ok).toBe(false);
    now = 10_000;
    for (let i = 0; i < 200; i++) gate.rate(`203.0.113.${i}`);
    expect(gate.sources).toBeLessThanOrEqual(100);
  });
});
