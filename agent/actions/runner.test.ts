import { describe, expect, it } from 'vitest';
import { describeExit, OutputTail } from './runner.js';

const base = { exitCode: 0, signal: null, timedOut: false, cancelled: false };

describe('describeExit', () => {
  it.each([
    [{ ...base }, 'succeeded', 0],
    [{ ...base, exitCode: 3 }, 'failed', 3],
    [{ ...base, exitCode: null, signal: 'SIGTERM', timedOut: true }, 'timedOut', undefined],
    [{ ...base, exitCode: null, signal: 'SIGTERM', cancelled: true }, 'cancelled', undefined],
    [{ ...base, exitCode: null, signal: 'SIGKILL' }, 'failed', undefined],
    [{ ...base, exitCode: null, spawnError: 'ENOENT' }, 'failed', undefined],
  ])('%o → %s', (r, outcome, exitCode) => {
    const d = describeExit(r, 1000);
    expect(d.outcome).toBe(outcome);
    expect(d.exitCode).toBe(exitCode);
  });
});

describe('OutputTail', () => {
  it('keeps only the last bytes', () => {
    const t = new OutputTail(8);
    for (let i = 0; i < 100; i++) t.push(`${i % 10}`);
    expect(t.value).toBe('23456789');
  });
});
