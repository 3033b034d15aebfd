// The pure parts of dead nodes in a maintenance: how long a step waits for its agent
// (options.agentTimeout, counted from status so a restart goes on counting) and the
// skip-wait-for-delete limit handed to the drain.
import { describe, expect, it } from 'vitest';
import { agentTimeoutMs, agentWaitLeftMs } from './action-steps.js';
import { skipWaitSeconds } from './drain-steps.js';

const NOW = new Date('2026-01-01T00:10:00Z');

describe('options.agentTimeout', () => {
  it.each<[string | undefined, number]>([
    [undefined, 15 * 60_000],
    ['3s', 3_000],
    ['1h', 3_600_000],
    ['garbage', 15 * 60_000],
  ])('%s → %i ms', (value, want) => {
    expect(agentTimeoutMs(value)).toBe(want);
  });
});

describe('time left waiting for an agent', () => {
  it.each<[string, string | undefined, number, number]>([
    ['no wait recorded yet: the whole timeout', undefined, 60_000, 60_000],
    ['waited 10 s of 60 s', '2026-01-01T00:09:50Z', 60_000, 50_000],
    ['waited exactly the timeout: over', '2026-01-01T00:09:00Z', 60_000, 0],
    ['waited longer (a restart in between): over', '2026-01-01T00:00:00Z', 60_000, -540_000],
    ['unreadable: starts now', 'yesterday', 60_000, 60_000],
  ])('%s', (_name, since, timeout, want) => {
    expect(agentWaitLeftMs(since, NOW, timeout)).toBe(want);
  });
});

describe('options.skipWaitForDeleteTimeout', () => {
  it.each<[string | undefined, number]>([
    [undefined, 60],
    ['2s', 2],
    ['90s', 90],
    ['0s', 0],
    ['nonsense', 60],
  ])('%s → %i s', (value, want) => {
    expect(skipWaitSeconds(value)).toBe(want);
  });
});
