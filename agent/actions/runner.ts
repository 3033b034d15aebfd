// Runs the actions the coordinator sends, at most once per ID (ledger.ts), through the host
// executor. An action's process outlives the agent (executor.ts): the ledger says how to find it
// again, so an agent that restarts follows it again (resume) and reports its result; its output
// and exit code are files. Results go to whichever connection is current when they are ready; a
// result with no connection is sent again when the coordinator re-sends the ID.
import { createHash } from 'node:crypto';
import { constants } from 'node:os';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MAX_DURATION_MS } from '../../shared/duration.js';
import type { Logger } from '../../shared/log.js';
import {
  OUTPUT_KEEP_BYTES,
  STATUS_TAIL_BYTES,
  type ActionResult,
  type MessageOf,
} from '../../shared/protocol.js';
import { setLongTimeout, sleepLong, type LongTimeout } from '../../shared/timers.js';
import type {
  ActionFiles,
  ExecResult,
  HostExecutor,
  LaunchResult,
  Probe,
  ProcessHandle,
} from './executor.js';
import { parseExitFile } from './host-command.js';
import {
  cancelledBeforeStart,
  decideCancel,
  decideStart,
  hasProcess,
  interrupted,
  ledgerKey,
  type ExecRecord,
  type Ledger,
  type LedgerRecord,
} from './ledger.js';
import { describeLeftovers, markedProcesses, signalMarked } from './procs.js';

export interface RunnerDeps {
  readonly log: Logger;
  readonly ledger: Ledger;
  readonly executor: HostExecutor;
  readonly bootID: string;
  readonly result: (result: ActionResult) => void;
  readonly progress: (p: {
    id: string;
    state: 'running' | 'rebooting';
    outputTail: string;
  }) => void;
  /** How often a running action's process is looked at. */
  readonly pollMs?: number;
  /** How often progress (the output tail) is sent. */
  readonly progressMs?: number;
  /** SIGTERM → SIGKILL on cancel and timeout. */
  readonly killGraceMs?: number;
  readonly procRoot?: string;
}

/** The last `maxBytes` of a file as UTF-8, cut on a character boundary; '' when missing. */
export async function readTail(file: string, maxBytes: number): Promise<string> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch {
    return '';
  }
  try {
    const { size } = await fh.stat();
    const start = Math.max(0, size - maxBytes);
    const buf = Buffer.alloc(size - start);
    const { bytesRead } = await fh.read(buf, 0, buf.length, start);
    let from = 0;
    // Skip UTF-8 continuation bytes so the tail does not begin inside a character.
    while (start > 0 && from < bytesRead && ((buf[from] ?? 0) & 0xc0) === 0x80) from++;
    return buf.subarray(from, bytesRead).toString('utf8');
  } finally {
    await fh.close();
  }
}

/** Pure: an action's end as the protocol reports it. */
export function describeExit(
  r: ExecResult,
  timeoutMs: number,
): Pick<ActionResult, 'outcome' | 'message'> & { exitCode?: number } {
  const code = r.exitCode === null ? {} : { exitCode: r.exitCode };
  if (r.spawnError !== undefined) {
    return { outcome: 'failed', message: `could not start: ${r.spawnError}`, ...code };
  }
  if (r.cancelled)
    return { outcome: 'cancelled', message: 'cancelled by the coordinator', ...code };
  if (r.timedOut) {
    return { outcome: 'timedOut', message: `timed out after ${timeoutMs / 1000} s`, ...code };
  }
  if (r.exitCode === 0) return { outcome: 'succeeded', message: 'exit code 0', exitCode: 0 };
  if (r.exitCode === null) {
    return { outcome: 'failed', message: `killed by ${r.signal ?? 'a signal'}` };
  }
  return { outcome: 'failed', message: `exit code ${r.exitCode}`, exitCode: r.exitCode };
}

/** Pure: the exit of an action's main process, from its exit file and what the probe knew. */
export function endOf(
  exec: ExecRecord,
  exitCode: number | undefined,
  probe: Probe,
): ExecResult | undefined {
  const stop = { timedOut: exec.stop === 'timeout', cancelled: exec.stop === 'cancel' };
  const code = exitCode ?? probe.exitCode;
  if (code !== undefined) return { exitCode: code, signal: null, ...stop };
  if (probe.signal !== undefined)
    return { exitCode: null, signal: signalName(probe.signal), ...stop };
  // Killed on purpose (the wrapper died with its command): what was asked is what happened.
  if (exec.stop !== undefined) return { exitCode: null, signal: null, ...stop };
  return undefined;
}

function signalName(n: number): string {
  const entry = Object.entries(constants.signals).find(([, v]) => v === n);
  return entry?.[0] ?? `signal ${n}`;
}

/** The exec part of a Script/Run record (always there for records this agent writes). */
function execOf(r: LedgerRecord, files: ActionFiles): ExecRecord {
  return r.exec ?? { dir: files.dir, timeoutMs: MAX_DURATION_MS };
}

function handleOf(exec: ExecRecord | undefined): ProcessHandle | undefined {
  if (exec?.unit !== undefined) return { unit: exec.unit };
  if (exec?.pid !== undefined) return { pid: exec.pid, startTime: exec.startTime ?? -1 };
  return undefined;
}

/** One Script/Run this agent follows, from launch (or resume) to its recorded result. */
interface Followed {
  record: LedgerRecord;
  readonly files: ActionFiles;
  handle?: ProcessHandle;
  finished: boolean;
  deadline?: LongTimeout;
  killTimer?: NodeJS.Timeout;
}

export class ActionRunner {
  private readonly running = new Map<string, Followed>();
  private readonly loops = new Set<Promise<void>>();
  private rebooting: string | undefined;
  private readonly stopped = new AbortController();

  /** Cancels of IDs never started, while their record is written. */
  private readonly forbidding = new Map<string, Promise<void>>();

  constructor(private readonly deps: RunnerDeps) {}

  runningIds(): string[] {
    return [...this.running.keys(), ...(this.rebooting === undefined ? [] : [this.rebooting])];
  }

  /** At agent start: follows again every action whose process a previous agent started. */
  async resume(): Promise<void> {
    for (const record of this.deps.ledger.open()) {
      if (record.kind !== 'Reboot' && hasProcess(record)) await this.resumeOne(record);
    }
  }

  /** Handles action.start: run it, attach to it, or report what it did before. */
  async start(msg: MessageOf<'action.start'>): Promise<void> {
    // A cancel of this ID is being recorded: decide on the record it leaves.
    await this.forbidding.get(msg.id)?.catch(() => undefined);
    const entry = this.deps.ledger.get(msg.id);
    const here = this.running.has(msg.id) || this.rebooting === msg.id;
    const decision = decideStart(msg.id, entry, here);
    switch (decision.kind) {
      case 'report':
        if (decision.result.reason !== undefined) {
          this.deps.log.error({ id: msg.id, err: decision.result.message }, 'action refused');
        }
        this.deps.result(decision.result);
        return;
      case 'attach':
        await this.attach(msg.id);
        return;
      case 'resume':
        if (entry !== undefined && !('unreadable' in entry)) await this.resumeOne(entry);
        return;
      case 'run':
        if (msg.action.type === 'Reboot') await this.runReboot(msg);
        else await this.runAction(msg);
        return;
    }
  }

  private async attach(id: string): Promise<void> {
    const f = this.running.get(id);
    if (f === undefined) {
      this.deps.progress({ id, state: 'rebooting', outputTail: '' });
      return;
    }
    const outputTail = await readTail(f.files.output, STATUS_TAIL_BYTES);
    this.deps.progress({ id, state: 'running', outputTail });
  }

  private files(key: string): ActionFiles {
    const dir = join(this.deps.executor.workDir, 'actions', key);
    return { dir, output: join(dir, 'output'), exit: join(dir, 'exit') };
  }

  /** Registers the action before anything is awaited: a re-send arriving meanwhile attaches. */
  private track(record: LedgerRecord): Followed {
    const f: Followed = {
      record,
      files: this.files(ledgerKey(record.id)),
      finished: false,
    };
    const handle = handleOf(record.exec);
    if (handle !== undefined) f.handle = handle;
    this.running.set(record.id, f);
    return f;
  }

  /** Every change of a followed record goes through here: in memory first, then in order. */
  private update(f: Followed, change: (r: LedgerRecord) => LedgerRecord): Promise<void> {
    f.record = change(f.record);
    return this.deps.ledger.put(f.record);
  }

  private async runAction(msg: MessageOf<'action.start'>): Promise<void> {
    const { ledger, log } = this.deps;
    const key = ledgerKey(msg.id);
    const f = this.track({
      id: msg.id,
      kind: msg.action.type,
      state: 'running',
      retryable: msg.retryable,
      bootID: this.deps.bootID,
      startedAt: new Date().toISOString(),
      exec: { dir: this.files(key).dir, timeoutMs: msg.timeoutMs },
    });
    try {
      await ledger.put(f.record);
    } catch (err) {
      this.running.delete(msg.id);
      log.error({ err: (err as Error).message, id: msg.id }, 'ledger write failed; not running');
      this.deps.result({
        id: msg.id,
        outcome: 'failed',
        message: `agent could not record the action: ${(err as Error).message}`,
      });
      return;
    }
    let launched: LaunchResult;
    try {
      launched = await this.launch(msg, f, key);
    } catch (err) {
      launched = { ok: false, error: (err as Error).message };
    }
    if (!launched.ok) {
      // nsenter's or systemd-run's own complaint may be in the output file.
      const outputTail = await readTail(f.files.output, OUTPUT_KEEP_BYTES);
      const failed = this.failed(f, `could not start: ${launched.error}`);
      await this.finish(f, outputTail === '' ? failed : { ...failed, outputTail });
      return;
    }
    f.handle = launched.handle;
    log.info({ id: msg.id, type: msg.action.type, handle: launched.handle }, 'action started');
    this.follow(f);
  }

  private async launch(
    msg: MessageOf<'action.start'>,
    f: Followed,
    key: string,
  ): Promise<LaunchResult> {
    const argv = await this.argv(msg);
    await rm(f.files.dir, { recursive: true, force: true });
    await mkdir(f.files.dir, { recursive: true, mode: 0o700 });
    return this.deps.executor.launch({
      id: msg.id,
      key,
      argv,
      files: f.files,
      record: (handle) =>
        this.update(f, (r) => ({ ...r, exec: { ...execOf(r, f.files), ...handle } })),
    });
  }

  private failed(f: Followed, message: string): ActionResult {
    return {
      id: f.record.id,
      outcome: 'failed',
      message: message.slice(0, 4096),
      startedAt: f.record.startedAt,
      finishedAt: new Date().toISOString(),
    };
  }

  private async argv(msg: MessageOf<'action.start'>): Promise<string[]> {
    const { action } = msg;
    switch (action.type) {
      case 'Run':
        return [...action.command];
      case 'Script': {
        // A file, not `bash -c`: the text is never parsed as an argument of anything.
        const dir = join(this.deps.executor.workDir, 'scripts');
        await mkdir(dir, { recursive: true });
        const file = join(
          dir,
          `${createHash('sha256').update(msg.id).digest('hex').slice(0, 32)}.sh`,
        );
        await writeFile(file, action.script, { mode: 0o700 });
        return ['bash', this.deps.executor.programPath(file), ...action.args];
      }
      case 'Reboot':
        throw new Error('Reboot has no command');
    }
  }

  /** A process a previous agent started: follow it, or report how it ended. */
  private async resumeOne(record: LedgerRecord): Promise<void> {
    if (this.running.has(record.id)) return;
    const f = this.track(record);
    if (record.bootID !== this.deps.bootID) {
      // Its process ended with that boot (a pid of another boot may name another process).
      await this.complete(f, { active: false });
      return;
    }
    this.deps.log.info({ id: record.id, handle: f.handle }, 'following an action again');
    this.follow(f);
  }

  /** Watches the main process until it exits; enforces the deadline and a recorded stop. */
  private follow(f: Followed): void {
    const exec = f.record.exec;
    if (exec === undefined || f.handle === undefined) return;
    const left = Date.parse(f.record.startedAt) + exec.timeoutMs - Date.now();
    f.deadline = setLongTimeout(() => {
      void this.stopAction(f, 'timeout');
    }, left);
    if (exec.stop !== undefined) void this.stopAction(f, exec.stop);
    const loop = this.watch(f, f.handle).finally(() => {
      this.loops.delete(loop);
    });
    this.loops.add(loop);
  }

  private async watch(f: Followed, handle: ProcessHandle): Promise<void> {
    const { executor, log } = this.deps;
    let lastProgress = Date.now();
    let failing = false;
    while (!this.stopped.signal.aborted) {
      let probe: Probe | undefined;
      try {
        probe = await executor.probe(handle);
        failing = false;
      } catch (err) {
        // Once per spell of failures: the loop keeps trying every poll.
        if (!failing) {
          log.warn({ id: f.record.id, err: (err as Error).message }, 'cannot look at the action');
        }
        failing = true;
      }
      if (probe !== undefined && !probe.active) {
        await this.complete(f, probe);
        return;
      }
      if (Date.now() - lastProgress >= (this.deps.progressMs ?? 5_000)) {
        lastProgress = Date.now();
        await this.attach(f.record.id);
      }
      await sleepLong(this.deps.pollMs ?? 1_000, this.stopped.signal);
    }
  }

  /** The main process is gone: read its exit, note what it left running, record the result. */
  private async complete(f: Followed, probe: Probe): Promise<void> {
    const exec = execOf(f.record, f.files);
    const exitText = await readFile(f.files.exit, 'utf8').catch(() => undefined);
    const end = endOf(exec, parseExitFile(exitText ?? ''), probe);
    const left = await markedProcesses(f.record.id, this.deps.procRoot).catch(() => []);
    const outputTail = await readTail(f.files.output, OUTPUT_KEEP_BYTES);
    const now = new Date();
    const base: ActionResult =
      end === undefined
        ? exitText === undefined
          ? // The wrapper never got to the command (nsenter or the unit failed first).
            this.failed(f, "could not start: the action's process ended before running it")
          : interrupted(f.record, now, "the action's process is gone and recorded no exit code")
        : {
            id: f.record.id,
            ...describeExit(end, exec.timeoutMs),
            startedAt: f.record.startedAt,
            finishedAt: now.toISOString(),
          };
    const leftovers = describeLeftovers(left);
    const message = leftovers === '' ? base.message : `${base.message}; ${leftovers}`;
    await this.finish(f, { ...base, message: message.slice(0, 4096), outputTail });
  }

  private async finish(f: Followed, result: ActionResult): Promise<void> {
    f.finished = true;
    f.deadline?.clear();
    clearTimeout(f.killTimer);
    try {
      await this.update(f, (r) => ({ ...r, state: 'finished', result }));
      // Recorded: the output and exit files have served.
      await rm(f.files.dir, { recursive: true, force: true }).catch(() => undefined);
    } catch (err) {
      // The result still goes out; only a re-send after a restart would miss it.
      this.deps.log.error({ err: (err as Error).message, id: f.record.id }, 'ledger write failed');
    }
    // Only now: a re-send until the record says finished attaches rather than follows again.
    this.running.delete(f.record.id);
    this.deps.log.info(
      { id: f.record.id, outcome: result.outcome, exitCode: result.exitCode },
      'action finished',
    );
    this.deps.result(result);
  }

  /**
   * Cancel or timeout: recorded first (a next agent reports it as such), then SIGTERM to the
   * unit or process group and to every process of the action, SIGKILL after the grace.
   */
  private async stopAction(f: Followed, why: 'cancel' | 'timeout'): Promise<void> {
    if (f.finished) return;
    if (f.record.exec?.stop === undefined) {
      await this.update(f, (r) => ({ ...r, exec: { ...execOf(r, f.files), stop: why } })).catch(
        (err: unknown) => {
          this.deps.log.error(
            { id: f.record.id, err: (err as Error).message },
            'ledger write failed',
          );
        },
      );
    }
    const handle = f.handle;
    if (handle === undefined) return; // applied by follow() once launched
    this.deps.log.info({ id: f.record.id, why }, 'stopping action');
    await this.signal(f, handle, 'SIGTERM');
    clearTimeout(f.killTimer);
    f.killTimer = setTimeout(() => {
      void this.signal(f, handle, 'SIGKILL');
    }, this.deps.killGraceMs ?? 5_000);
    f.killTimer.unref();
  }

  private async signal(f: Followed, handle: ProcessHandle, sig: NodeJS.Signals): Promise<void> {
    try {
      await this.deps.executor.kill(handle, sig);
      await signalMarked(f.record.id, sig, this.deps.procRoot);
    } catch (err) {
      this.deps.log.warn({ id: f.record.id, sig, err: (err as Error).message }, 'kill failed');
    }
  }

  private async runReboot(msg: MessageOf<'action.start'>): Promise<void> {
    const { ledger, log } = this.deps;
    // Before the first await: a second start of this Reboot attaches instead of rebooting again.
    this.rebooting = msg.id;
    const record: LedgerRecord = {
      id: msg.id,
      kind: 'Reboot',
      state: 'rebooting',
      retryable: msg.retryable,
      bootID: this.deps.bootID,
      startedAt: new Date().toISOString(),
    };
    try {
      await ledger.put(record);
    } catch (err) {
      this.rebooting = undefined;
      log.error({ err: (err as Error).message, id: msg.id }, 'ledger write failed; not rebooting');
      this.deps.result({
        id: msg.id,
        outcome: 'failed',
        message: `agent could not record the action: ${(err as Error).message}`,
      });
      return;
    }
    log.info({ id: msg.id }, 'reboot recorded');
    this.deps.progress({ id: record.id, state: 'rebooting', outputTail: '' });
    try {
      await this.deps.executor.reboot();
    } catch (err) {
      this.rebooting = undefined;
      const result: ActionResult = {
        id: record.id,
        outcome: 'failed',
        message: (err as Error).message.slice(0, 4096),
        startedAt: record.startedAt,
        finishedAt: new Date().toISOString(),
      };
      await ledger.put({ ...record, state: 'finished', result }).catch((e: unknown) => {
        log.error({ err: (e as Error).message, id: record.id }, 'ledger write failed');
      });
      this.deps.result(result);
      return;
    }
    // The host (or the simulated machine) now stops this process; the agent of the next boot
    // finds the record left `rebooting` and reports it (ledger.ts).
    log.info({ id: record.id }, 'reboot started');
  }

  /** Handles action.cancel: every ID gets an answer that says whether it can still run. */
  cancel(id: string): void {
    const f = this.running.get(id);
    const here = f !== undefined || this.rebooting === id;
    const decision = decideCancel(id, this.deps.ledger.get(id), here);
    switch (decision.kind) {
      case 'stop':
        if (f === undefined) return; // the reboot under way: its new boot answers
        this.deps.log.info({ id }, 'cancelling action');
        void this.stopAction(f, 'cancel');
        return;
      case 'report':
        this.deps.result(decision.result);
        return;
      case 'forbid':
        void this.forbid(id);
        return;
      case 'none':
        return;
    }
  }

  /** A cancel before any start: recorded first, so that a start racing it is refused. */
  private async forbid(id: string): Promise<void> {
    const record = cancelledBeforeStart(id, this.deps.bootID, new Date());
    const written = this.deps.ledger.put(record);
    this.forbidding.set(id, written);
    try {
      await written;
      this.deps.log.info({ id }, 'cancelled before it started: recorded, never to run');
      if (record.result !== undefined) this.deps.result(record.result);
    } catch (err) {
      this.deps.log.error({ err, id }, 'could not record a cancel before start');
    } finally {
      this.forbidding.delete(id);
    }
  }

  /**
   * Agent shutdown: actions keep running (they are not the agent's processes); only watching
   * them stops. The next agent follows them again from the ledger.
   */
  async stop(): Promise<void> {
    this.stopped.abort();
    for (const f of this.running.values()) {
      f.deadline?.clear();
      clearTimeout(f.killTimer);
    }
    await Promise.all([...this.loops]);
  }
}
