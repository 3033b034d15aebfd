// The agent's record of every action it has started, in its state dir (a hostPath), so that an
// action ID runs at most once across agent restarts, crashes and node reboots. A record is
// written and fsync'd before the action starts and again when it ends.
import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { ActionResultBody, type ActionResult } from '../../shared/protocol.js';

export const LedgerRecordSchema = Type.Object({
  id: Type.String(),
  kind: Type.Union([Type.Literal('Script'), Type.Literal('Run'), Type.Literal('Reboot')]),
  state: Type.Union([Type.Literal('running'), Type.Literal('rebooting'), Type.Literal('finished')]),
  retryable: Type.Boolean(),
  /** The boot the action started in; a Reboot is done once the boot changed. */
  bootID: Type.String(),
  startedAt: Type.String(),
  result: Type.Optional(ActionResultBody),
});
export type LedgerRecord = Static<typeof LedgerRecordSchema>;

/** What to do when the coordinator (re)sends an action ID. */
export type StartDecision =
  { kind: 'run' } | { kind: 'attach' } | { kind: 'report'; result: ActionResult };

/**
 * Pure: an ID never seen runs; one running in this process is attached to (its result goes to
 * whoever asks); a finished one returns its recorded result and is never run again.
 */
export function decideStart(record: LedgerRecord | undefined, runningHere: boolean): StartDecision {
  if (record === undefined) return { kind: 'run' };
  if (record.state === 'finished' && record.result !== undefined) {
    if (record.result.outcome === 'interrupted' && record.retryable) return { kind: 'run' };
    return { kind: 'report', result: record.result };
  }
  if (runningHere || record.state === 'rebooting') return { kind: 'attach' };
  // Running in the ledger but not here: the recovery at start should have closed it.
  return { kind: 'report', result: interrupted(record, new Date()) };
}

function interrupted(record: LedgerRecord, now: Date): ActionResult {
  return {
    id: record.id,
    outcome: 'interrupted',
    message:
      'the agent stopped while the action ran; it is not run again' +
      (record.retryable ? ' unless re-sent' : ''),
    startedAt: record.startedAt,
    finishedAt: now.toISOString(),
  };
}

/**
 * Pure: what a record becomes when the agent starts. A running action died with the previous
 * agent (Interrupted). A Reboot is done when the boot changed; if the boot is the same the
 * reboot never happened, which is an interruption too.
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
  return { ...record, state: 'finished', result: interrupted(record, now) };
}

const KEEP_MS = 14 * 24 * 3_600_000;

export class Ledger {
  private readonly records = new Map<string, LedgerRecord>();
  private readonly dir: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'ledger');
  }

  private file(id: string): string {
    // IDs contain slashes; a hash makes a safe, fixed-length file name.
    return join(this.dir, `${createHash('sha256').update(id).digest('hex').slice(0, 40)}.json`);
  }

  /** Reads the ledger, closes what the previous agent left open, drops old records. */
  async load(bootID: string, now = new Date()): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    for (const name of await readdir(this.dir)) {
      const path = join(this.dir, name);
      if (!name.endsWith('.json')) {
        await rm(path, { force: true });
        continue;
      }
      let data: unknown;
      try {
        data = JSON.parse(await readFile(path, 'utf8'));
      } catch {
        continue; // an unreadable record cannot be honoured; keep it for a human to look at
      }
      if (!Value.Check(LedgerRecordSchema, data)) continue;
      const finishedAt = Date.parse(data.result?.finishedAt ?? '');
      if (data.state === 'finished' && now.getTime() - finishedAt > KEEP_MS) {
        await rm(path, { force: true });
        continue;
      }
      const recovered = recoverRecord(data, bootID, now);
      this.records.set(recovered.id, recovered);
      if (recovered !== data) await this.write(recovered);
    }
  }

  get(id: string): LedgerRecord | undefined {
    return this.records.get(id);
  }

  /** Newest first, for the hello. */
  list(limit = 256): LedgerRecord[] {
    return [...this.records.values()]
      .sort((a, b) => b.startedAt.localeCompare(a.startedAt))
      .slice(0, limit);
  }

  async put(record: LedgerRecord): Promise<void> {
    await this.write(record);
    this.records.set(record.id, record);
  }

  /** temp file + fsync + rename + fsync of the directory: durable before we act on it. */
  private async write(record: LedgerRecord): Promise<void> {
    const path = this.file(record.id);
    const tmp = `${path}.${process.pid}.tmp`;
    const fh = await open(tmp, 'w', 0o600);
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
