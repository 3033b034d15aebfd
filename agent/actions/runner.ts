// Runs the actions the coordinator sends, at most once per ID (ledger.ts), through the host
// executor, keeping the last OUTPUT_KEEP_BYTES of output. Results go to whichever connection
// is current when they are ready; a result with no connection is sent again when the
// coordinator re-sends the ID.
import { mkdir, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from '../../shared/log.js';
import {
  OUTPUT_KEEP_BYTES,
  STATUS_TAIL_BYTES,
  tailBytes,
  type ActionResult,
  type MessageOf,
} from '../../shared/protocol.js';
import type { ExecResult, HostExecutor } from './executor.js';
import { decideStart, type Ledger, type LedgerRecord } from './ledger.js';

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
}

/** Keeps the last `max` bytes of a stream without growing. */
export class OutputTail {
  private text = '';
  constructor(private readonly max = OUTPUT_KEEP_BYTES) {}
  push(chunk: string): void {
    this.text += chunk;
    if (this.text.length > this.max * 2) this.text = tailBytes(this.text, this.max);
  }
  get value(): string {
    return tailBytes(this.text, this.max);
  }
}

/** Pure: an executor result as the protocol reports it. */
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

interface Running {
  readonly abort: AbortController;
  readonly output: OutputTail;
  readonly done: Promise<void>;
}

export class ActionRunner {
  private readonly running = new Map<string, Running>();
  private rebooting: string | undefined;
  private stopping = false;

  constructor(private readonly deps: RunnerDeps) {}

  runningIds(): string[] {
    return [...this.running.keys(), ...(this.rebooting === undefined ? [] : [this.rebooting])];
  }

  /** Handles action.start: run it, attach to it, or report what it did before. */
  async start(msg: MessageOf<'action.start'>): Promise<void> {
    const { ledger, log } = this.deps;
    const decision = decideStart(ledger.get(msg.id), this.running.has(msg.id));
    if (decision.kind === 'report') {
      this.deps.result(decision.result);
      return;
    }
    if (decision.kind === 'attach') {
      const r = this.running.get(msg.id);
      if (r !== undefined) {
        this.deps.progress({
          id: msg.id,
          state: 'running',
          outputTail: tailBytes(r.output.value, STATUS_TAIL_BYTES),
        });
      } else {
        this.deps.progress({ id: msg.id, state: 'rebooting', outputTail: '' });
      }
      return;
    }
    const record: LedgerRecord = {
      id: msg.id,
      kind: msg.action.type,
      state: msg.action.type === 'Reboot' ? 'rebooting' : 'running',
      retryable: msg.retryable,
      bootID: this.deps.bootID,
      startedAt: new Date().toISOString(),
    };
    // Registered before the ledger write resolves: a re-send arriving meanwhile attaches.
    const abort = new AbortController();
    const output = new OutputTail();
    let resolveDone: () => void = () => undefined;
    const done = new Promise<void>((r) => (resolveDone = r));
    if (msg.action.type !== 'Reboot') this.running.set(msg.id, { abort, output, done });
    try {
      await ledger.put(record);
    } catch (err) {
      this.running.delete(msg.id);
      resolveDone();
      log.error({ err: (err as Error).message, id: msg.id }, 'ledger write failed; not running');
      this.deps.result({
        id: msg.id,
        outcome: 'failed',
        message: `agent could not record the action: ${(err as Error).message}`,
      });
      return;
    }
    log.info({ id: msg.id, type: msg.action.type }, 'action started');
    if (msg.action.type === 'Reboot') {
      await this.reboot(record);
      resolveDone();
      return;
    }
    try {
      const argv = await this.argv(msg);
      const timer = setInterval(() => {
        this.deps.progress({
          id: msg.id,
          state: 'running',
          outputTail: tailBytes(output.value, STATUS_TAIL_BYTES),
        });
      }, 5_000);
      let exec: ExecResult;
      try {
        exec = await this.deps.executor.exec({
          argv,
          timeoutMs: msg.timeoutMs,
          signal: abort.signal,
          onOutput: (c) => {
            output.push(c);
          },
        });
      } finally {
        clearInterval(timer);
      }
      await this.finish(record, {
        id: msg.id,
        ...describeExit(exec, msg.timeoutMs),
        outputTail: output.value,
        startedAt: record.startedAt,
        finishedAt: new Date().toISOString(),
      });
    } catch (err) {
      await this.finish(record, {
        id: msg.id,
        outcome: 'failed',
        message: `agent error: ${(err as Error).message}`,
        outputTail: output.value,
        startedAt: record.startedAt,
        finishedAt: new Date().toISOString(),
      });
    } finally {
      this.running.delete(msg.id);
      resolveDone();
    }
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

  private async finish(record: LedgerRecord, result: ActionResult): Promise<void> {
    // Killed because the agent is stopping: the record stays open, so the next agent reports
    // it Interrupted instead of a "cancelled" nobody asked for.
    if (this.stopping) return;
    try {
      await this.deps.ledger.put({ ...record, state: 'finished', result });
    } catch (err) {
      // The result still goes out; only a re-send after a restart would call it Interrupted.
      this.deps.log.error({ err: (err as Error).message, id: record.id }, 'ledger write failed');
    }
    this.deps.log.info(
      { id: record.id, outcome: result.outcome, exitCode: result.exitCode },
      'action finished',
    );
    this.deps.result(result);
  }

  private async reboot(record: LedgerRecord): Promise<void> {
    this.rebooting = record.id;
    this.deps.progress({ id: record.id, state: 'rebooting', outputTail: '' });
    try {
      await this.deps.executor.reboot();
    } catch (err) {
      this.rebooting = undefined;
      await this.finish(record, {
        id: record.id,
        outcome: 'failed',
        message: (err as Error).message,
        startedAt: record.startedAt,
        finishedAt: new Date().toISOString(),
      });
      return;
    }
    // The host (or the simulated machine) now stops this process; the agent of the next boot
    // finds the record left `rebooting` and reports it (ledger.ts).
    this.deps.log.info({ id: record.id }, 'reboot started');
  }

  cancel(id: string): void {
    const r = this.running.get(id);
    if (r === undefined) return;
    this.deps.log.info({ id }, 'cancelling action');
    r.abort.abort();
  }

  /** Agent shutdown: running actions are killed and left to the ledger's recovery. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const r of this.running.values()) r.abort.abort();
    await Promise.all([...this.running.values()].map((r) => r.done));
  }
}
