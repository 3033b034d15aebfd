// What the agent learns about an action's processes from /proc. The agent sees the host's
// processes (the DaemonSet runs with hostPID; the local executor's are its own), so a restarted
// agent finds an action again by the pid it recorded, and every process an action left behind
// by the variable noma puts in each action's environment (children inherit it, including those
// that moved to a session or process group of their own).
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** The variable that marks every process of one action; its value is the action ID. */
export const ACTION_ID_VAR = 'NOMA_ACTION_ID';

export interface ProcStat {
  readonly pid: number;
  readonly comm: string;
  /** R, S, D, Z (zombie: exited, not yet reaped), X… */
  readonly state: string;
  readonly pgrp: number;
  readonly session: number;
  /** Clock ticks after boot: with the pid, it names one process across pid reuse. */
  readonly startTime: number;
}

/** Pure: parses /proc/<pid>/stat. The command name may hold spaces and parentheses. */
export function parseStat(pid: number, text: string): ProcStat | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  // Fields after the name start at field 3 (state); starttime is field 22.
  const rest = text
    .slice(close + 2)
    .trim()
    .split(' ');
  const startTime = Number(rest[19]);
  const pgrp = Number(rest[2]);
  const session = Number(rest[3]);
  if (rest[0] === undefined || ![startTime, pgrp, session].every(Number.isInteger)) {
    return undefined;
  }
  return { pid, comm: text.slice(open + 1, close), state: rest[0], pgrp, session, startTime };
}

export async function readStat(pid: number, procRoot = '/proc'): Promise<ProcStat | undefined> {
  try {
    return parseStat(pid, await readFile(join(procRoot, String(pid), 'stat'), 'utf8'));
  } catch {
    return undefined; // gone (ENOENT/ESRCH) or not ours to read
  }
}

/** The process `pid` that started at `startTime` still runs (a zombie has exited). */
export async function isAlive(
  pid: number,
  startTime: number,
  procRoot = '/proc',
): Promise<boolean> {
  const stat = await readStat(pid, procRoot);
  return stat !== undefined && stat.startTime === startTime && !isExited(stat.state);
}

function isExited(state: string): boolean {
  return state === 'Z' || state === 'X' || state === 'x';
}

/** Pure: whether a /proc/<pid>/environ (NUL-separated) carries `name=value`. */
export function environHas(environ: Buffer, name: string, value: string): boolean {
  const needle = Buffer.from(`${name}=${value}\0`);
  if (environ.subarray(0, needle.length).equals(needle)) return true;
  if (environ.includes(Buffer.concat([Buffer.from([0]), needle]))) return true;
  // The last entry may lack its NUL.
  const last = Buffer.from(`\0${name}=${value}`);
  return (
    environ.length >= last.length && environ.subarray(environ.length - last.length).equals(last)
  );
}

/** Live processes whose environment marks them as action `id`'s, oldest first. */
export async function markedProcesses(id: string, procRoot = '/proc'): Promise<ProcStat[]> {
  const found: ProcStat[] = [];
  for (const name of await readdir(procRoot)) {
    if (!/^\d+$/.test(name)) continue;
    let environ: Buffer;
    try {
      environ = await readFile(join(procRoot, name, 'environ'));
    } catch {
      continue; // gone meanwhile, or a kernel thread
    }
    if (!environHas(environ, ACTION_ID_VAR, id)) continue;
    const stat = await readStat(Number(name), procRoot);
    if (stat !== undefined && !isExited(stat.state)) found.push(stat);
  }
  return found.sort((a, b) => a.startTime - b.startTime);
}

/** Signals every live process of action `id`; returns how many were signalled. */
export async function signalMarked(
  id: string,
  sig: NodeJS.Signals,
  procRoot = '/proc',
): Promise<number> {
  let n = 0;
  for (const p of await markedProcesses(id, procRoot)) {
    try {
      process.kill(p.pid, sig);
      n++;
    } catch {
      // exited meanwhile
    }
  }
  return n;
}

/** Pure: "3 processes left running: 812 sleep, 813 daemon…", bounded; '' for none. */
export function describeLeftovers(procs: readonly ProcStat[], max = 8): string {
  if (procs.length === 0) return '';
  const shown = procs
    .slice(0, max)
    .map((p) => `${p.pid} ${p.comm.slice(0, 32)}`)
    .join(', ');
  const more = procs.length > max ? `, and ${procs.length - max} more` : '';
  const what = procs.length === 1 ? 'process' : 'processes';
  return `${procs.length} ${what} it started still running (not waited for): ${shown}${more}`;
}
