// The agent's record of every action it has started, in its state dir (a hostPath), so that an
// action ID runs at most once across agent restarts, crashes and node reboots. A record is
// written and fsync'd before the action starts, again once its process is known (how to find
// it again), and when it ends.
//
// It fails closed: a record file that exists but cannot be read, parsed or validated makes its
// action ID refused (LedgerUnreadable), never run, because the file may be all that says the
// action already ran. Such a file is kept for a human to look at; its name (a hash of the ID)
// is how the ID is recognised.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { MAX_DURATION_MS } from '../../shared/duration.js';
import { ActionResultBody, LEDGER_UNREADABLE, type ActionResult } from '../../shared/protocol.js';

/** How the action's process is found again, and what was asked of it (runner.ts). */
export const ExecSchema = Type.Object({
  /** The action's files (output, exit code) as the agent sees them. */
  dir: Type.String(),
  timeoutMs: Type.Integer({ minimum: 1 }),
  /** The transient systemd unit, recorded before it is started. */
  unit: Type.Optional(Type.String()),
  /** The detached main process and its start time (clock ticks after boot: pid reuse). */
  pid: Type.Optional(Type.Integer({ minimum: 1 })),
  startTime: Type.Optional(Type.Integer({ minimum: 0 })),
  /** A cancel or timeout was decided: the next agent reports that, not a bare exit. */
  stop: Type.Optional(Type.Union([Type.Literal('cancel'), Type.Literal('timeout')])),
});
export type ExecRecord = Static<typeof ExecSchema>;

export const LedgerRecordSchema = Type.Object({
  id: Type.String(),
  /** Cancelled: a cancel came before any start; the ID is never run (its kind is unknown). */
  kind: Type.Union([
    Type.Literal('Script'),
    Type.Literal('Run'),
    Type.Literal('Reboot'),
    Type.Literal('Cancelled'),
  ]),
  state: Type.Union([Type.Literal('running'), Type.Literal('rebooting'), Type.Literal('finished')]),
  retryable: Type.Boolean(),
  /** The boot the action started in; a Reboot is done once the boot changed. */
  bootID: Type.String(),
  startedAt: Type.String(),
  exec: Type.Optional(ExecSchema),
  result: Type.Optional(ActionResultBody),
});
export type LedgerRecord = Static<typeof LedgerRecordSchema>;

/** A record file that exists but says nothing we can trust. */
export interface UnreadableEntry {
  readonly unreadable: true;
  readonly file: string;
  readonly reason: string;
}

export type LedgerEntry = LedgerRecord | UnreadableEntry;

export function isUnreadable(e: LedgerEntry | undefined): e is UnreadableEntry {
  return e !== undefined && 'unreadable' in e;
}

/** The file-name key of an ID: IDs contain slashes; a hash is a safe, fixed-length name. */
export function ledgerKey(id: string): string {
  return createHash('sha256').update(id).digest('hex').slice(0, 40);
}

/** What to do when the coordinator (re)sends an action ID. */
export type StartDecision =
  | { kind: 'run' }
  | { kind: 'attach' }
  | { kind: 'resume' }
  | { kind: 'report'; result: ActionResult };

/**
 * Pure: an ID never seen runs; one running in this process is attached to (its result goes to
 * whoever asks); one whose process was started by a previous agent is followed again; a finished
 * one returns its recorded result and is never run again; an unreadable one is refused.
 */
export function decideStart(
  id: string,
  entry: LedgerEntry | undefined,
  runningHere: boolean,
): StartDecision {
  // First: a start still writing its first record has no entry yet, and must not run twice.
  if (runningHere) return { kind: 'attach' };
  if (entry === undefined) return { kind: 'run' };
  if (isUnreadable(entry)) return { kind: 'report', result: unreadableResult(id, entry) };
  const record = entry;
  if (record.state === 'finished' && record.result !== undefined) {
    if (record.result.outcome === 'interrupted' && record.retryable) return { kind: 'run' };
    return { kind: 'report', result: record.result };
  }
  if (record.state === 'rebooting') return { kind: 'attach' };
  if (hasProcess(record)) return { kind: 'resume' };
  // Running in the ledger with no process to find: the recovery at start should have closed it.
  return { kind: 'report', result: interrupted(record, new Date()) };
}

/** What to do with action.cancel of an ID. */
export type CancelDecision =
  /** Running here: stop it; its result (cancelled, or how it ended) follows. */
  | { kind: 'stop' }
  /** It ended, or its record cannot be read: say so (the coordinator decides what it proves). */
  | { kind: 'report'; result: ActionResult }
  /** Never started here: record it cancelled, so that a start sent later is refused. */
  | { kind: 'forbid' }
  /** A reboot under way, or an action a restarted agent has not followed yet: the new boot or
   * the followed action answers. */
  | { kind: 'none' };

/**
 * Pure: the answer to a cancel. The coordinator keeps a node out of service until a cancel is
 * confirmed, so every ID gets an answer that says whether it can still run.
 */
export function decideCancel(
  id: string,
  entry: LedgerEntry | undefined,
  runningHere: boolean,
): CancelDecision {
  if (runningHere) return { kind: 'stop' };
  if (entry === undefined) return { kind: 'forbid' };
  if (isUnreadable(entry)) return { kind: 'report', result: unreadableResult(id, entry) };
  if (entry.state === 'finished' && entry.result !== undefined) {
    return { kind: 'report', result: entry.result };
  }
  return { kind: 'none' };
}

/** The record of an ID cancelled before any start: finished, never to run. */
export function cancelledBeforeStart(id: string, bootID: string, now: Date): LedgerRecord {
  const at = now.toISOString();
  return {
    id,
    kind: 'Cancelled',
    state: 'finished',
    retryable: false,
    bootID,
    startedAt: at,
    result: {
      id,
      outcome: 'cancelled',
      message: 'cancelled before it started: it was never run here and will not be',
      startedAt: at,
      finishedAt: at,
    },
  };
}

export function hasProcess(record: LedgerRecord): boolean {
  return record.exec?.unit !== undefined || record.exec?.pid !== undefined;
}

export function unreadableResult(id: string, entry: UnreadableEntry): ActionResult {
  return {
    id,
    outcome: 'failed',
    reason: LEDGER_UNREADABLE,
    message:
      `${LEDGER_UNREADABLE}: the agent's record of this action (${entry.file}) cannot be ` +
      `read: ${entry.reason.slice(0, 512)}; the action is not run, as it may have run ` +
      'already. Inspect or remove the file on the node.',
  };
}

/** An action whose process is gone without a recorded exit. */
export function interrupted(record: LedgerRecord, now: Date, why?: string): ActionResult {
  return {
    id: record.id,
    outcome: 'interrupted',
    message:
      (why ?? 'the action ended with no exit code recorded (its process was killed with it)') +
      '; it is not run again' +
      (record.retryable ? ' unless re-sent' : ''),
    startedAt: record.startedAt,
    finishedAt: now.toISOString(),
  };
}

/**
 * Pure: what a record becomes when the agent starts. A Reboot is done when the boot changed;
 * if the boot is the same the reboot never happened, which is an interruption. A Script/Run
 * whose process was recorded stays running: the runner finds it again (runner.resume). One
 * without a recorded process never started: the gate of its wrapper (host-command.ts) kept it
 * from running when the agent died before recording it; a record of the old format had its
 * process die with the agent.
 */
export function recoverRecord(record: LedgerRecord, bootID: string, now: Date): LedgerRecord {
  if (record.state === 'finished') return record;
  if (record.kind === 'Reboot' && record.state === 'rebooting' && record.bootID !== bootID) {
    return {
      ...record,
      state: 'finished',
      result: {
        id: record.id,
        outcome: 'succeeded',
        message: `rebooted: boot ${record.bootID} → ${bootID}`,
        startedAt: record.startedAt,
        finishedAt: now.toISOString(),
      },
    };
  }
  if (record.kind !== 'Reboot' && hasProcess(record)) return record;
  const why =
    record.kind === 'Reboot'
      ? 'the boot did not change: the reboot did not happen'
      : record.exec !== undefined
        ? 'the agent stopped before the action started: it did not run'
        : undefined;
  return { ...record, state: 'finished', result: interrupted(record, now, why) };
}

/**
 * Retention. A finished record answers re-sends of its ID for as long as a maintenance can
 * re-send it, which has no hard bound (a maintenance waits for a disconnected agent
 * indefinitely). So records are kept until their number exceeds MAX_RECORDS; only then are the
 * oldest finished ones dropped, and never one that finished less than RETAIN_MS ago (three times
 * the longest timeout noma accepts: a maintenance that re-sends an ID does so within the timeouts
 * of its own steps). A record is a few KiB (up to 256 KiB with a full output tail), so the bound
 * keeps the ledger under ~256 MiB at the very worst and a few MiB in practice.
 */
export const MAX_RECORDS = 1024;
export const RETAIN_MS = 3 * MAX_DURATION_MS;

/** Pure: the IDs to drop under the retention rule above, oldest first. */
export function recordsToDrop(
  records: readonly LedgerRecord[],
  now: Date,
  max = MAX_RECORDS,
  retainMs = RETAIN_MS,
): string[] {
  if (records.length <= max) return [];
  const finished = records
    .filter((r) => r.state === 'finished')
    .map((r) => ({ id: r.id, at: Date.parse(r.result?.finishedAt ?? r.startedAt) }))
    // A record with no readable time is kept: its age is unknown.
    .filter((r) => Number.isFinite(r.at) && now.getTime() - r.at > retainMs)
    .sort((a, b) => a.at - b.at);
  return finished.slice(0, records.length - max).map((r) => r.id);
}

export class Ledger {
  private readonly records = new Map<string, LedgerRecord>();
  /** By file key: record files that exist and cannot be trusted. */
  private readonly unreadable = new Map<string, UnreadableEntry>();
  /** Writes of one ID, in the order they were asked for. */
  private readonly writes = new Map<string, Promise<void>>();
  private tmpSeq = 0;
  private readonly dir: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'ledger');
  }

  private file(id: string): string {
    return join(this.dir, `${ledgerKey(id)}.json`);
  }

  /**
   * Reads the ledger, closes what the previous agent left open, applies retention. Temp files
   * are writes that never got renamed: the record they were to replace (or none) is the truth.
   */
  async load(bootID: string, now = new Date()): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    for (const name of await readdir(this.dir)) {
      if (name.endsWith('.tmp')) {
        await rm(join(this.dir, name), { force: true });
        continue;
      }
      if (!name.endsWith('.json')) continue; // not ours; left alone
      const data = await this.read(name);
      if (data === undefined) continue;
      const recovered = recoverRecord(data, bootID, now);
      this.records.set(recovered.id, recovered);
      if (recovered !== data) await this.write(recovered);
    }
    await this.prune(now);
  }

  /** One record file; an untrustworthy one is indexed as unreadable. */
  private async read(name: string): Promise<LedgerRecord | undefined> {
    const key = name.slice(0, -'.json'.length);
    const checked = await this.check(key, join(this.dir, name));
    if (typeof checked !== 'string') return checked;
    this.unreadable.set(key, { unreadable: true, file: join(this.dir, name), reason: checked });
    return undefined;
  }

  /** The record in `path`, or why it cannot be trusted. */
  private async check(key: string, path: string): Promise<LedgerRecord | string> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      return `read: ${(err as Error).message}`;
    }
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (err) {
      return `not JSON (${text.length} bytes): ${(err as Error).message}`;
    }
    if (!Value.Check(LedgerRecordSchema, data)) {
      const first = Value.Errors(LedgerRecordSchema, data).First();
      return `not a ledger record: ${first?.path ?? ''} ${first?.message ?? ''}`.trim();
    }
    // A file under another ID's name (copied, renamed): which ID it speaks for is unknown.
    if (ledgerKey(data.id) !== key) return `holds the record of another ID (${data.id})`;
    return data;
  }

  get(id: string): LedgerEntry | undefined {
    return this.records.get(id) ?? this.unreadable.get(ledgerKey(id));
  }

  /** The record files that could not be read, for the log and /status. */
  unreadableFiles(): UnreadableEntry[] {
    return [...this.unreadable.values()];
  }

  /** Newest first, for the hello. Unreadable records are not listed: their ID is unknown. */
  list(limit = 256): LedgerRecord[] {
    return [...this.records.values()]
      .sort((a, b) => b.startedAt.localeCompare(a.startedAt))
      .slice(0, limit);
  }

  /** Records not yet finished (the runner follows them again at start). */
  open(): LedgerRecord[] {
    return [...this.records.values()].filter((r) => r.state !== 'finished');
  }

  /** Writes of one ID are applied in call order, on disk and in memory alike. */
  async put(record: LedgerRecord): Promise<void> {
    const previous = this.writes.get(record.id) ?? Promise.resolve();
    const next = previous
      .catch(() => undefined)
      .then(async () => {
        await this.write(record);
        this.records.set(record.id, record);
      });
    this.writes.set(record.id, next);
    try {
      await next;
    } finally {
      if (this.writes.get(record.id) === next) this.writes.delete(record.id);
    }
    if (record.state === 'finished') await this.prune(new Date());
  }

  private async prune(now: Date): Promise<void> {
    for (const id of recordsToDrop([...this.records.values()], now)) {
      await rm(this.file(id), { force: true });
      this.records.delete(id);
    }
  }

  /**
   * temp file + fsync + rename + fsync of the directory: durable before we act on it. Each
   * write has a temp file of its own, so two writes never interleave in one file.
   */
  private async write(record: LedgerRecord): Promise<void> {
    const path = this.file(record.id);
    const tmp = `${path}.${process.pid}.${++this.tmpSeq}.${randomBytes(4).toString('hex')}.tmp`;
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(JSON.stringify(record));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    const dh = await open(this.dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  }
}
