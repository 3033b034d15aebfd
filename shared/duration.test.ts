import { describe, expect, it } from 'vitest';
import { backoffMs, MAX_DURATION, MAX_DURATION_MS, parseDuration } from './duration.js';

describe('parseDuration', () => {
  it.each([
    ['0', 0],
    ['5m', 300_000],
    ['30s', 30_000],
    ['1h30m', 5_400_000],
    ['250ms', 250],
    ['1.5s', 1_500],
  ])('%s = %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(['', '5', '-5m', '5 m', 'm', '5x', '5m!', '1d'])('rejects %j', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });

  it('accepts up to 720h (30 days), however it is written', () => {
    expect(MAX_DURATION_MS).toBe(30 * 24 * 3_600_000);
    expect(parseDuration(MAX_DURATION)).toBe(MAX_DURATION_MS);
    for (const text of ['720h', '719h60m', '43200m', '2592000s', '700h'])
      expect(parseDuration(text), text).toBeLessThanOrEqual(MAX_DURATION_MS);
  });

  it.each(['721h', '720h1ms', '720h0.5s', '719h61m', '2592001s', '100000h'])(
    'rejects %s: over 720h',
    (text) => {
      expect(parseDuration(text)).toBeUndefined();
    },
  );
});

describe('backoffMs', () => {
  const opts = { baseMs: 1_000, maxMs: 60_000 };
  it('doubles from the base and stops at the cap', () => {
    const mid = (): number => 0.5;
    expect([0, 1, 2, 3, 10, 100].map((a) => backoffMs(a, opts, mid))).toEqual([
      1_000, 2_000, 4_000, 8_000, 60_000, 60_000,
    ]);
  });
  it('jitters by at most 20 %', () => {
    expect(backoffMs(2, opts, () => 0)).toBe(3_200);
    expect(backoffMs(2, opts, () => 1)).toBe(4_800);
  });
});
