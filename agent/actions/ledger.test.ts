import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { decideStart, Ledger, recoverRecord, type LedgerRecord } from './ledger.js';

const now = new Date('2026-01-01T00:00:00Z');
const rec = (over: Partial<LedgerRecord> = {}): LedgerRecord => ({
  id: 'u/n/0/1',
  kind: 'Script',
  state: 'running',
  retryable: false,
  bootID: 'boot-1',
  startedAt: '2025-12-31T23:59:00.000Z',
  ...over,
});

describe('decideStart', () => {
  it('runs an unknown ID', () => {
    expect(decideStart(undefined, false)).toEqual({ kind: 'run' });
  });
  it('attaches to an action running here or a reboot in progress', () => {
    expect(decideStart(rec(), true)).toEqual({ kind: 'attach' });
    expect(decideStart(rec({ kind: 'Reboot', state: 'rebooting' }), false)).toEqual({
      kind: 'attach',
    });
  });
  it('returns the recorded result of a finished action', () => {
    const result = { id: 'u/n/0/1', outcome: 'succeeded' as const, message: 'exit code 0' };
    expect(decideStart(rec({ state: 'finished', result }), false)).toEqual({
      kind: 'report',
      result,
    });
  });
  it('re-runs an interrupted action only when it is retryable', () => {
    const result = { id: 'u/n/0/1', outcome: 'interrupted' as const, message: 'x' };
    expect(decideStart(rec({ state: 'finished', result }), false).kind).toBe('report');
    expect(decideStart(rec({ state: 'finished', result, retryable: true }), false).kind).toBe(
      'run',
    );
  });
});

describe('recoverRecord', () => {
  it('marks an action that was running Interrupted', () => {
    const r = recoverRecord(rec(), 'boot-1', now);
    expect(r.state).toBe('finished');
    expect(r.result?.outcome).toBe('interrupted');
  });
  it('finishes a Reboot when the boot changed, and calls it interrupted when not', () => {
    const reboot = rec({ kind: 'Reboot', state: 'rebooting' });
    expect(recoverRecord(reboot, 'boot-2', now).result?.outcome).toBe('succeeded');
    expect(recoverRecord(reboot, 'boot-1', now).result?.outcome).toBe('interrupted');
  });
  it('leaves finished records alone', () => {
    const done = rec({ state: 'finished', result: { id: 'x', outcome: 'failed', message: 'm' } });
    expect(recoverRecord(done, 'boot-9', now)).toBe(done);
  });
});

describe('Ledger on disk', () => {
  let dir = '';
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('survives a restart and closes what was left running', async () => {
    dir = await mkdtemp(join(tmpdir(), 'ledger-'));
    const a = new Ledger(dir);
    await a.load('boot-1');
    await a.put(rec({ id: 'u/n/0/1' }));
    await a.put(rec({ id: 'u/n/1/1', kind: 'Reboot', state: 'rebooting' }));
    const b = new Ledger(dir);
    await b.load('boot-2');
    expect(b.get('u/n/0/1')?.result?.outcome).toBe('interrupted');
    expect(b.get('u/n/1/1')?.result?.outcome).toBe('succeeded');
    expect(b.list().map((r) => r.state)).toEqual(['finished', 'finished']);
    // The recovery itself was persisted: a third start sees the same.
    const c = new Ledger(dir);
    await c.load('boot-3');
    expect(c.get('u/n/1/1')?.result?.message).toContain('boot-1');
    expect((await readdir(join(dir, 'ledger'))).every((f) => f.endsWith('.json'))).toBe(true);
  });
});
