import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_DURATION_MS } from '../../shared/duration.js';
import { decodeFrame, encode, AGENT_SENDS } from '../../shared/protocol.js';
import {
  cancelledBeforeStart,
  decideCancel,
  decideStart,
  isUnreadable,
  Ledger,
  ledgerKey,
  recordsToDrop,
  recoverRecord,
  RETAIN_MS,
  type LedgerRecord,
} from './ledger.js';

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
const ID = 'u/n/0/1';

describe('decideCancel', () => {
  const result = { id: ID, outcome: 'succeeded' as const, message: 'exit code 0' };
  it.each([
    ['running here: stop it', rec(), true, 'stop'],
    ['never seen: forbid it', undefined, false, 'forbid'],
    ['finished: its result', rec({ state: 'finished', result }), false, 'report'],
    [
      'unreadable: the refusal',
      { unreadable: true as const, file: 'f', reason: 'bad' },
      false,
      'report',
    ],
    [
      'a reboot under way: the new boot answers',
      rec({ kind: 'Reboot', state: 'rebooting' }),
      false,
      'none',
    ],
  ])('%s', (_name, entry, here, kind) => {
    expect(decideCancel(ID, entry, here).kind).toBe(kind);
  });
  it('records a cancel before start as finished and cancelled, so a later start reports it', () => {
    const r = cancelledBeforeStart(ID, 'boot-1', now);
    expect(decideStart(ID, r, false)).toEqual({ kind: 'report', result: r.result });
    expect(r.result?.outcome).toBe('cancelled');
  });
});

describe('decideStart', () => {
  it('runs an unknown ID, unless a start of it is still recording it here', () => {
    expect(decideStart(ID, undefined, false)).toEqual({ kind: 'run' });
    expect(decideStart(ID, undefined, true)).toEqual({ kind: 'attach' });
  });
  it('attaches to an action running here or a reboot in progress', () => {
    expect(decideStart(ID, rec(), true)).toEqual({ kind: 'attach' });
    expect(decideStart(ID, rec({ kind: 'Reboot', state: 'rebooting' }), false)).toEqual({
      kind: 'attach',
    });
  });
  it('follows again an action whose process a previous agent started', () => {
    const exec = { dir: '/d', timeoutMs: 1000 };
    expect(decideStart(ID, rec({ exec: { ...exec, pid: 9, startTime: 1 } }), false)).toEqual({
      kind: 'resume',
    });
    expect(decideStart(ID, rec({ exec: { ...exec, unit: 'noma-x.service' } }), false)).toEqual({
      kind: 'resume',
    });
    expect(decideStart(ID, rec({ exec }), false).kind).toBe('report');
  });
  it('returns the recorded result of a finished action', () => {
    const result = { id: ID, outcome: 'succeeded' as const, message: 'exit code 0' };
    expect(decideStart(ID, rec({ state: 'finished', result }), false)).toEqual({
      kind: 'report',
      result,
    });
  });
  it('re-runs an interrupted action only when it is retryable', () => {
    const result = { id: ID, outcome: 'interrupted' as const, message: 'x' };
    expect(decideStart(ID, rec({ state: 'finished', result }), false).kind).toBe('report');
    expect(decideStart(ID, rec({ state: 'finished', result, retryable: true }), false).kind).toBe(
      'run',
    );
  });
  it('refuses an ID whose record is unreadable, with a bounded LedgerUnreadable failure', () => {
    const d = decideStart(
      ID,
      { unreadable: true, file: '/s/ledger/x.json', reason: 'x'.repeat(10_000) },
      false,
    );
    expect(d.kind).toBe('report');
    if (d.kind !== 'report') return;
    expect(d.result.outcome).toBe('failed');
    expect(d.result.reason).toBe('LedgerUnreadable');
    expect(d.result.message).toMatch(/^LedgerUnreadable: /);
    expect(d.result.message.length).toBeLessThan(1024);
    // It is a valid frame: the coordinator accepts it.
    const frame = decodeFrame(encode('action.result', d.result), AGENT_SENDS);
    expect(frame.ok).toBe(true);
  });
});

describe('recoverRecord', () => {
  it('marks an action of the old format (no process recorded) Interrupted', () => {
    const r = recoverRecord(rec(), 'boot-1', now);
    expect(r.state).toBe('finished');
    expect(r.result?.outcome).toBe('interrupted');
  });
  it('says an action whose process was never recorded did not run', () => {
    const r = recoverRecord(rec({ exec: { dir: '/d', timeoutMs: 1 } }), 'boot-1', now);
    expect(r.result?.outcome).toBe('interrupted');
    expect(r.result?.message).toMatch(/did not run/);
  });
  it('leaves an action with a recorded process running, for the runner to follow', () => {
    const running = rec({ exec: { dir: '/d', timeoutMs: 1, pid: 5, startTime: 7 } });
    expect(recoverRecord(running, 'boot-1', now)).toBe(running);
    const unit = rec({ exec: { dir: '/d', timeoutMs: 1, unit: 'noma-a.service' } });
    expect(recoverRecord(unit, 'boot-2', now)).toBe(unit);
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

describe('recordsToDrop', () => {
  const finishedAt = (msAgo: number, id: string): LedgerRecord =>
    rec({
      id,
      state: 'finished',
      result: {
        id,
        outcome: 'succeeded',
        message: '',
        finishedAt: new Date(now.getTime() - msAgo).toISOString(),
      },
    });
  const old = RETAIN_MS + 1;
  it.each([
    ['under the bound, even very old ones', [old * 10, old * 5], 4, []],
    ['over the bound: the oldest old ones', [old * 3, old * 2, old, 1000], 2, ['r0', 'r1']],
    ['over the bound but all recent: none', [RETAIN_MS - 1, 1000, 5], 1, []],
    ['over the bound: only those past the retention', [old * 2, RETAIN_MS - 1, 5], 1, ['r0']],
  ])('%s', (_name, ages, max, want) => {
    const records = ages.map((a, i) => finishedAt(a, `r${i}`));
    expect(recordsToDrop(records, now, max)).toEqual(want);
  });
  it('never drops a running record or one without a time', () => {
    const records = [
      rec({ id: 'run', startedAt: '2000-01-01T00:00:00Z' }),
      rec({ id: 'notime', state: 'finished', startedAt: 'garbage' }),
      finishedAt(old, 'f'),
    ];
    expect(recordsToDrop(records, now, 0)).toEqual(['f']);
  });
  it('keeps records three times the longest timeout', () => {
    expect(RETAIN_MS).toBe(3 * MAX_DURATION_MS);
  });
});

describe('Ledger on disk', () => {
  let dir = '';
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ledger-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const fileOf = (id: string): string => join(dir, 'ledger', `${ledgerKey(id)}.json`);

  it('survives a restart and closes what was left running', async () => {
    const a = new Ledger(dir);
    await a.load('boot-1');
    await a.put(rec({ id: 'u/n/0/1' }));
    await a.put(rec({ id: 'u/n/1/1', kind: 'Reboot', state: 'rebooting' }));
    const b = new Ledger(dir);
    await b.load('boot-2');
    const get = (l: Ledger, id: string): LedgerRecord | undefined => {
      const e = l.get(id);
      return isUnreadable(e) ? undefined : e;
    };
    expect(get(b, 'u/n/0/1')?.result?.outcome).toBe('interrupted');
    expect(get(b, 'u/n/1/1')?.result?.outcome).toBe('succeeded');
    expect(b.list().map((r) => r.state)).toEqual(['finished', 'finished']);
    // The recovery itself was persisted: a third start sees the same.
    const c = new Ledger(dir);
    await c.load('boot-3');
    expect(get(c, 'u/n/1/1')?.result?.message).toContain('boot-1');
    expect((await readdir(join(dir, 'ledger'))).every((f) => f.endsWith('.json'))).toBe(true);
  });

  it.each([
    ['corrupt JSON', '{"id": "u/n/0/1", "kind": ', /not JSON/],
    ['a truncated file', JSON.stringify(rec()).slice(0, 40), /not JSON/],
    ['an empty file', '', /not JSON \(0 bytes\)/],
    ['a schema-invalid record', JSON.stringify({ ...rec(), state: 'exploded' }), /not a ledger/],
    ['a record of another ID', JSON.stringify(rec({ id: 'other/n/0/1' })), /another ID/],
  ])('refuses an ID whose record file is %s, and keeps the file', async (_n, text, reason) => {
    const l0 = new Ledger(dir);
    await l0.load('boot-1');
    await writeFile(fileOf(ID), text);
    const l = new Ledger(dir);
    await l.load('boot-1');
    const e = l.get(ID);
    expect(isUnreadable(e)).toBe(true);
    if (!isUnreadable(e)) return;
    expect(e.reason).toMatch(reason);
    const d = decideStart(ID, e, false);
    expect(d.kind === 'report' && d.result.message.startsWith('LedgerUnreadable:')).toBe(true);
    // Another ID is still unknown, not unreadable; the file is untouched.
    expect(l.get('u/n/0/2')).toBeUndefined();
    expect(await readFile(fileOf(ID), 'utf8')).toBe(text);
    expect(l.list()).toEqual([]);
    expect(l.unreadableFiles()).toHaveLength(1);
  });

  it('keeps a finished record older than the old 14 days, and drops only past the bound', async () => {
    const l = new Ledger(dir);
    await l.load('boot-1');
    const done = rec({
      state: 'finished',
      result: { id: ID, outcome: 'succeeded', message: '', finishedAt: '2025-01-01T00:00:00Z' },
    });
    await l.put(done);
    const later = new Ledger(dir);
    await later.load('boot-2', new Date('2026-06-01T00:00:00Z'));
    expect(later.get(ID)).toEqual(done);
    expect(decideStart(ID, later.get(ID), false).kind).toBe('report');
  });

  it('removes the temp file of an interrupted write; the previous record stands', async () => {
    const l = new Ledger(dir);
    await l.load('boot-1');
    const done = rec({ state: 'finished', result: { id: ID, outcome: 'failed', message: 'm' } });
    await l.put(done);
    // A write that died before its rename: never the truth.
    await writeFile(`${fileOf(ID)}.123.1.abcd.tmp`, JSON.stringify(rec()));
    await writeFile(`${fileOf('u/n/9/9')}.123.2.abcd.tmp`, '{"half');
    const l2 = new Ledger(dir);
    await l2.load('boot-1');
    expect(l2.get(ID)).toEqual(done);
    expect(l2.get('u/n/9/9')).toBeUndefined();
    expect((await readdir(join(dir, 'ledger'))).sort()).toEqual([`${ledgerKey(ID)}.json`]);
  });

  it('applies concurrent writes of one ID in call order, each with its own temp file', async () => {
    const l = new Ledger(dir);
    await l.load('boot-1');
    const versions = Array.from({ length: 20 }, (_, i) =>
      rec({ startedAt: `2025-12-31T23:59:${String(i).padStart(2, '0')}.000Z` }),
    );
    await Promise.all(versions.map((v) => l.put(v)));
    const last = versions.at(-1);
    expect(l.get(ID)).toEqual(last);
    expect(JSON.parse(await readFile(fileOf(ID), 'utf8'))).toEqual(last);
    expect(await readdir(join(dir, 'ledger'))).toEqual([`${ledgerKey(ID)}.json`]);
  });

  it('two ledgers writing one ID at once (two agents) never share a temp file', async () => {
    const a = new Ledger(dir);
    const b = new Ledger(dir);
    await a.load('boot-1');
    await b.load('boot-1');
    const reboot = rec({ kind: 'Reboot', state: 'rebooting' });
    await Promise.all([a.put(reboot), b.put(reboot), a.put(reboot), b.put(reboot)]);
    expect(JSON.parse(await readFile(fileOf(ID), 'utf8'))).toEqual(reboot);
    expect(await readdir(join(dir, 'ledger'))).toEqual([`${ledgerKey(ID)}.json`]);
  });
});
