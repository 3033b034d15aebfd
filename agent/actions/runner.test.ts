// The runner with real processes (the local executor) in a temp state dir: what an action
// leaves, how it ends, and that it outlives the runner that started it.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ActionResult, MessageOf, WireAction } from '../../shared/protocol.js';
import { LocalExecutor, NsenterExecutor } from './executor.js';
import { isUnreadable, Ledger, ledgerKey, type LedgerRecord } from './ledger.js';
import { markedProcesses, signalMarked } from './procs.js';
import { ActionRunner, describeExit, endOf, readTail } from './runner.js';

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

describe('endOf', () => {
  const exec = { dir: '/d', timeoutMs: 1000 };
  it.each([
    ['an exit file', exec, 0, { active: false }, { exitCode: 0, signal: null }],
    ['systemd’s exit code', exec, undefined, { active: false, exitCode: 4 }, { exitCode: 4 }],
    ['systemd’s signal', exec, undefined, { active: false, signal: 9 }, { signal: 'SIGKILL' }],
    [
      'a recorded cancel',
      { ...exec, stop: 'cancel' as const },
      undefined,
      { active: false },
      { cancelled: true },
    ],
    [
      'a recorded timeout',
      { ...exec, stop: 'timeout' as const },
      143,
      { active: false },
      { timedOut: true, exitCode: 143 },
    ],
  ])('%s', (_name, e, code, probe, want) => {
    expect(endOf(e, code, probe)).toMatchObject(want);
  });
  it('is undefined when the process is gone with nothing recorded (Interrupted)', () => {
    expect(endOf(exec, undefined, { active: false })).toBeUndefined();
  });
});

describe('readTail', () => {
  it('keeps the last bytes, cut on a character boundary', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tail-'));
    try {
      await writeFile(join(dir, 'f'), `${'x'.repeat(100)}é0123456789`);
      expect(await readTail(join(dir, 'f'), 11)).toBe('0123456789');
      expect(await readTail(join(dir, 'f'), 12)).toBe('é0123456789');
      expect(await readTail(join(dir, 'missing'), 10)).toBe('');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

interface Harness {
  readonly runner: ActionRunner;
  readonly ledger: Ledger;
  readonly results: ActionResult[];
  readonly executor: LocalExecutor;
  next(): Promise<ActionResult>;
}

describe('ActionRunner with real processes', () => {
  let dir = '';
  let work = '';
  const runners: ActionRunner[] = [];
  const ids: string[] = [];
  let seq = 0;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'runner-'));
    work = join(dir, 'work');
    await mkdir(work);
    await writeFile(join(dir, 'boot_id'), 'boot-1\n');
  });
  afterEach(async () => {
    await Promise.all(runners.splice(0).map((r) => r.stop()));
    for (const id of ids.splice(0)) await signalMarked(id, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  async function harness(opts: { rebootRequest?: string } = {}): Promise<Harness> {
    const executor = new LocalExecutor(work, join(dir, 'boot_id'), opts.rebootRequest);
    const ledger = new Ledger(join(dir, 'state'));
    const bootID = await executor.bootID();
    await ledger.load(bootID);
    const results: ActionResult[] = [];
    const waiters: ((r: ActionResult) => void)[] = [];
    const runner = new ActionRunner({
      log: pino({ level: 'silent' }),
      ledger,
      executor,
      bootID,
      pollMs: 50,
      progressMs: 100,
      killGraceMs: 500,
      result: (r) => {
        results.push(r);
        waiters.shift()?.(r);
      },
      progress: () => undefined,
    });
    runners.push(runner);
    await runner.resume();
    let seen = 0;
    const next = (): Promise<ActionResult> => {
      const ready = results[seen];
      if (ready !== undefined) {
        seen++;
        return Promise.resolve(ready);
      }
      return new Promise((resolve) => {
        waiters.push((r) => {
          seen++;
          resolve(r);
        });
      });
    };
    return { runner, ledger, results, executor, next };
  }

  const start = (
    action: WireAction,
    over: Partial<MessageOf<'action.start'>> = {},
  ): MessageOf<'action.start'> => {
    const id = `u/n/${seq++}/1`;
    ids.push(id);
    return { v: 1, type: 'action.start', id, action, timeoutMs: 30_000, retryable: false, ...over };
  };
  const script = (text: string): WireAction => ({ type: 'Script', script: text, args: [] });
  const waitFile = async (file: string): Promise<void> => {
    for (let i = 0; i < 200 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 25));
  };

  it('runs a script in the work dir and reports its exit, output and a cleaned-up dir', async () => {
    const h = await harness();
    const msg = start(script('echo hello; echo oops >&2; exit 3'));
    await h.runner.start(msg);
    const r = await h.next();
    expect(r).toMatchObject({ id: msg.id, outcome: 'failed', exitCode: 3, message: 'exit code 3' });
    expect(r.outputTail).toBe('hello\noops\n');
    expect(existsSync(join(work, 'actions', ledgerKey(msg.id)))).toBe(false);
    const rec = h.ledger.get(msg.id) as LedgerRecord;
    expect(rec.state).toBe('finished');
    expect(rec.exec?.pid).toBeGreaterThan(0);
  });

  it('gives the action a clean environment, not the agent’s', async () => {
    process.env['NOMA_AGENT_SECRET_FOR_TEST'] = 'leak';
    try {
      const h = await harness();
      const msg = start({ type: 'Run', command: ['env'] });
      await h.runner.start(msg);
      const r = await h.next();
      const vars = (r.outputTail ?? '')
        .trim()
        .split('\n')
        .map((l) => l.split('=')[0])
        .sort();
      expect(vars).toEqual(['HOME', 'LANG', 'NOMA_ACTION', 'NOMA_ACTION_ID', 'PATH', 'PWD']);
      expect(r.outputTail).toContain(`NOMA_ACTION_ID=${msg.id}\n`);
      expect(r.outputTail).toContain('HOME=/root\n');
      expect(r.outputTail).toContain('LANG=C.UTF-8\n');
    } finally {
      delete process.env['NOMA_AGENT_SECRET_FOR_TEST'];
    }
  });

  it('ends the step when the main process exits, reporting what it left running', async () => {
    const h = await harness();
    // A daemon in the background, and a setsid child holding the output open.
    const msg = start(script('sleep 30 & setsid sleep 31 & echo started; exit 0'));
    const t0 = Date.now();
    await h.runner.start(msg);
    const r = await h.next();
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(r.outcome).toBe('succeeded');
    expect(r.outputTail).toBe('started\n');
    // Named by what runs at that moment (sh, setsid or sleep): counted, not named.
    expect(r.message).toMatch(
      /; 2 processes it started still running \(not waited for\): \d+ \S+, \d+ \S+$/,
    );
    expect(await markedProcesses(msg.id)).toHaveLength(2);
  });

  it('reports a command that cannot be found as failed', async () => {
    const h = await harness();
    const msg = start({ type: 'Run', command: ['/nonexistent/noma-prog'] });
    await h.runner.start(msg);
    const r = await h.next();
    expect(r).toMatchObject({ outcome: 'failed', exitCode: 127 });
    expect(r.outputTail).toMatch(/not found/);
  });

  it('answers a cancel of every ID: a finished one with its result, an unknown one forbidden for good', async () => {
    const h = await harness();
    const count = join(dir, 'count');
    // Never started: the cancel is recorded and answered; a start sent after it never runs.
    const never = start(script(`echo run >> ${count}`));
    h.runner.cancel(never.id);
    expect(await h.next()).toMatchObject({ id: never.id, outcome: 'cancelled' });
    await h.runner.start(never);
    expect(await h.next()).toMatchObject({ id: never.id, outcome: 'cancelled' });
    expect(existsSync(count)).toBe(false);
    // A second runner on the same state dir (the agent restarted) refuses it too.
    const again = await harness();
    await again.runner.start(never);
    expect(await again.next()).toMatchObject({ id: never.id, outcome: 'cancelled' });
    expect(existsSync(count)).toBe(false);
    // Finished: the cancel gets the recorded result, nothing is run again.
    const done = start(script(`echo done >> ${count}`));
    await h.runner.start(done);
    const first = await h.next();
    h.runner.cancel(done.id);
    expect(await h.next()).toEqual(first);
    expect(await readFile(count, 'utf8')).toBe('done\n');
  });

  it('an action whose process fails before running the command (nsenter) could not start', async () => {
    const executor = new NsenterExecutor(work, work, join(dir, 'boot_id'), {
      targetPid: 2 ** 22 + 1, // above pid_max: no such process
      systemd: false,
    });
    const ledger = new Ledger(join(dir, 'state'));
    await ledger.load('boot-1');
    const results: ActionResult[] = [];
    const runner = new ActionRunner({
      log: pino({ level: 'silent' }),
      ledger,
      executor,
      bootID: 'boot-1',
      pollMs: 50,
      result: (r) => results.push(r),
      progress: () => undefined,
    });
    runners.push(runner);
    const msg = start(script('echo ran >> ran'));
    await runner.start(msg);
    for (let i = 0; i < 100 && results.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(results[0]?.outcome).toBe('failed');
    expect(results[0]?.message).toMatch(/^could not start: /);
    expect(results[0]?.outputTail ?? '').toMatch(/nsenter/);
    expect(existsSync(join(work, 'ran'))).toBe(false);
  });

  it('times out: kills the process group and everything marked, and says timedOut', async () => {
    const h = await harness();
    const msg = start(script('setsid sleep 60 & echo started; sleep 60; echo never'), {
      timeoutMs: 700,
    });
    await h.runner.start(msg);
    const r = await h.next();
    expect(r.outcome).toBe('timedOut');
    expect(r.outputTail).toBe('started\n');
    for (let i = 0; i < 40 && (await markedProcesses(msg.id)).length > 0; i++) {
      await new Promise((res) => setTimeout(res, 50));
    }
    expect(await markedProcesses(msg.id)).toEqual([]);
  });

  it('cancels: the whole action goes, the result says cancelled', async () => {
    const h = await harness();
    const msg = start(script('echo $$ > pid; sleep 60 & echo $! > child; wait'));
    await h.runner.start(msg);
    await waitFile(join(work, 'child'));
    h.runner.cancel(msg.id);
    const r = await h.next();
    expect(r.outcome).toBe('cancelled');
    for (let i = 0; i < 40 && (await markedProcesses(msg.id)).length > 0; i++) {
      await new Promise((res) => setTimeout(res, 50));
    }
    expect(await markedProcesses(msg.id)).toEqual([]);
  });

  it('outlives the runner: a new one follows it again and reports it once, run once', async () => {
    const a = await harness();
    const msg = start(script('echo run >> runs.log; sleep 1; echo done; exit 4'));
    await a.runner.start(msg);
    await waitFile(join(work, 'runs.log'));
    await a.runner.stop(); // the agent goes away; the action does not
    expect(a.results).toEqual([]);
    expect(await markedProcesses(msg.id)).not.toEqual([]);
    const b = await harness();
    const r = await b.next();
    expect(r).toMatchObject({ id: msg.id, outcome: 'failed', exitCode: 4, outputTail: 'done\n' });
    // The coordinator's re-send gets the recorded result; nothing runs again.
    await b.runner.start(msg);
    expect(await b.next()).toEqual(r);
    expect(b.results).toHaveLength(2);
    expect(await readFile(join(work, 'runs.log'), 'utf8')).toBe('run\n');
  });

  it('a re-send while the action runs attaches instead of running it again', async () => {
    const h = await harness();
    const msg = start(script('echo run >> runs.log; sleep 0.5'));
    await Promise.all([h.runner.start(msg), h.runner.start(msg)]);
    await h.runner.start(msg);
    await h.next();
    expect(await readFile(join(work, 'runs.log'), 'utf8')).toBe('run\n');
    expect(h.results).toHaveLength(1);
  });

  it('reports Interrupted only for a process gone without a recorded exit', async () => {
    const h = await harness();
    const msg = start(script('echo run >> runs.log; sleep 30'));
    await h.runner.start(msg);
    await waitFile(join(work, 'runs.log'));
    await h.runner.stop();
    // Killed behind noma's back while no agent watched (an OOM kill, a human).
    await signalMarked(msg.id, 'SIGKILL');
    const b = await harness();
    const r = await b.next();
    expect(r.outcome).toBe('interrupted');
    expect(r.message).toMatch(/recorded no exit code/);
  });

  it('refuses an ID whose ledger record is unreadable, and runs nothing', async () => {
    const h0 = await harness();
    await h0.runner.stop();
    const msg = start(script('echo run >> runs.log'));
    await writeFile(join(dir, 'state', 'ledger', `${ledgerKey(msg.id)}.json`), '{"trunc');
    const h = await harness();
    expect(isUnreadable(h.ledger.get(msg.id))).toBe(true);
    await h.runner.start(msg);
    const r = await h.next();
    expect(r.outcome).toBe('failed');
    expect(r.reason).toBe('LedgerUnreadable');
    expect(r.message).toMatch(/^LedgerUnreadable: /);
    await new Promise((res) => setTimeout(res, 300));
    expect(existsSync(join(work, 'runs.log'))).toBe(false);
  });

  it('a Reboot whose ledger write was interrupted (temp file, no rename) reboots once', async () => {
    const request = join(dir, 'reboot-request');
    const msg = start({ type: 'Reboot' });
    const ledgerDir = join(dir, 'state', 'ledger');
    await mkdir(ledgerDir, { recursive: true });
    // The agent died between writing the temp file and renaming it: no reboot was asked.
    await writeFile(
      join(ledgerDir, `${ledgerKey(msg.id)}.json.77.1.0a0b0c0d.tmp`),
      JSON.stringify({
        id: msg.id,
        kind: 'Reboot',
        state: 'rebooting',
        retryable: false,
        bootID: 'boot-1',
        startedAt: new Date().toISOString(),
      }),
    );
    const a = await harness({ rebootRequest: request });
    expect(a.ledger.get(msg.id)).toBeUndefined();
    expect(await readdir(ledgerDir)).toEqual([]);
    // Two starts at once (a re-send racing the first): one reboot.
    await Promise.all([a.runner.start(msg), a.runner.start(msg)]);
    expect(existsSync(request)).toBe(true);
    await rm(request);
    // The agent is stopped by the reboot and did not see it happen; the same boot re-sends.
    await a.runner.stop();
    await writeFile(join(dir, 'boot_id'), 'boot-2\n');
    const b = await harness({ rebootRequest: request });
    await b.runner.start(msg);
    const r = await b.next();
    expect(r.outcome).toBe('succeeded');
    expect(r.message).toMatch(/boot-1 → boot-2/);
    expect(existsSync(request)).toBe(false);
  });
});
