import { describe, expect, it } from 'vitest';
import { EventSpamFilter } from './events.js';

describe('EventSpamFilter', () => {
  it('lets a burst through per object and reason, then one per refill interval', () => {
    const f = new EventSpamFilter(3, 1_000);
    const allowed = (key: string, at: number) => f.allow(key, at);
    expect([0, 0, 0, 0].map(() => allowed('cr/Cordoned', 0))).toEqual([true, true, true, false]);
    // Another reason on the same object is not crowded out.
    expect(allowed('cr/Completed', 0)).toBe(true);
    expect(allowed('cr/Cordoned', 500)).toBe(false);
    expect(allowed('cr/Cordoned', 1_000)).toBe(true);
    expect(allowed('cr/Cordoned', 1_100)).toBe(false);
  });

  it('refills to the burst, no further', () => {
    const f = new EventSpamFilter(2, 1_000);
    expect(f.allow('k', 0)).toBe(true);
    const later = 60_000;
    expect([0, 0, 0].map(() => f.allow('k', later))).toEqual([true, true, false]);
  });
});
