// Where node-local actions run. An action is started so that it outlives the agent: as a
// transient systemd unit where the host runs systemd, else as a process in a session of its own,
// detached from the agent, with its output and its exit code in files. The agent only records
// how to find it again (a unit name, or a pid and its start time) and watches it; a restarted
// agent finds it again the same way (runner.ts). Production enters the host's namespaces through
// a target pid (1; the DaemonSet runs with hostPID); the sandbox and tests run actions as local
// processes in a per-node work dir. The agent's action logic is the same for both.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import {
  actionEnv,
  HOST_PATH,
  nsenterArgv,
  parseSystemctlShow,
  systemctlKillArgv,
  systemctlShowArgv,
  systemdRunArgv,
  unitName,
  wrapperArgv,
  type UnitState,
} from './host-command.js';
import { isAlive, readStat } from './procs.js';

/** How an action's main process ended, as describeExit (runner.ts) reads it. */
export interface ExecResult {
  /** null when the process was killed by a signal, or no exit code was recorded. */
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly timedOut: boolean;
  readonly cancelled: boolean;
  /** The process could not be started (missing program, not executable…). */
  readonly spawnError?: string;
}

/** How a started action is found again, by this agent or the next: recorded in the ledger. */
export interface UnitHandle {
  readonly unit: string;
}
export interface PidHandle {
  readonly pid: number;
  /** /proc/<pid>/stat starttime: a pid reused by another process does not match. */
  readonly startTime: number;
}
export type ProcessHandle = UnitHandle | PidHandle;

/** An action's files, as the agent sees them (under workDir). */
export interface ActionFiles {
  readonly dir: string;
  readonly output: string;
  readonly exit: string;
}

export interface LaunchRequest {
  readonly id: string;
  /** The ledger's key of the ID (a hash): names the unit. */
  readonly key: string;
  readonly argv: readonly string[];
  readonly files: ActionFiles;
  /**
   * Records the handle durably (the ledger). The program runs only once this resolved; if it
   * throws, the program is not run and the error propagates.
   */
  readonly record: (handle: ProcessHandle) => Promise<void>;
}

export type LaunchResult = { ok: true; handle: ProcessHandle } | { ok: false; error: string };

/** What a probe finds: running, or ended (with what systemd still knows of the end, if any). */
export type Probe = UnitState;

export interface HostExecutor {
  readonly kind: 'local' | 'host';
  /** A directory the agent can write and the executed programs can read (scripts go here). */
  readonly workDir: string;
  /** How a path under workDir is seen by the executed program. */
  programPath(path: string): string;
  launch(req: LaunchRequest): Promise<LaunchResult>;
  /** Whether the action's main process still runs. Throws when that cannot be known now. */
  probe(handle: ProcessHandle): Promise<Probe>;
  /** Signals everything the handle names (the process group, or the unit's cgroup). */
  kill(handle: ProcessHandle, sig: NodeJS.Signals): Promise<void>;
  /** Starts a reboot of the node; production never gets to see it resolve for long. */
  reboot(): Promise<void>;
  /** The current boot of the node. */
  bootID(): Promise<string>;
}

/**
 * Starts `argv` (already wrapped, see host-command.ts) in a session of its own with its output
 * to the output file, gated on the wrapper's stdin: the handle is recorded before the program is
 * let go, and a dead agent's closed pipe stops it from ever running.
 */
async function launchDetached(
  argv: readonly string[],
  cwd: string,
  env: Record<string, string>,
  req: LaunchRequest,
  procRoot: string,
): Promise<LaunchResult> {
  const [file, ...args] = argv;
  if (file === undefined) throw new Error('empty command');
  const out = await open(req.files.output, 'a', 0o600);
  let child;
  let spawned: Promise<Error | undefined>;
  try {
    // detached: setsid, so the agent's death (and its process group's) does not reach it.
    child = spawn(file, args, { cwd, env, detached: true, stdio: ['pipe', out.fd, out.fd] });
    const c = child;
    // Listened to at once: 'spawn' is emitted on the next tick.
    spawned = new Promise((resolve) => {
      c.once('spawn', () => {
        resolve(undefined);
      });
      c.once('error', resolve);
    });
  } finally {
    await out.close();
  }
  const started = await spawned;
  if (started !== undefined || child.pid === undefined) {
    return { ok: false, error: started?.message ?? 'no pid' };
  }
  child.on('error', () => undefined);
  child.stdin?.on('error', () => undefined); // EPIPE when it exited before `go`
  child.unref();
  const stat = await readStat(child.pid, procRoot);
  if (stat === undefined) {
    child.stdin?.end();
    return { ok: false, error: 'the action process exited before it could be started' };
  }
  const handle = { pid: child.pid, startTime: stat.startTime };
  try {
    await req.record(handle);
  } catch (err) {
    child.stdin?.end(); // EOF: the wrapper exits without running anything
    throw err;
  }
  child.stdin?.end('go\n');
  return { ok: true, handle };
}

/** Signals the process group led by the recorded process, unless that pid is someone else now. */
async function killGroup(handle: PidHandle, sig: NodeJS.Signals, procRoot: string): Promise<void> {
  if (!(await isAlive(handle.pid, handle.startTime, procRoot))) return;
  try {
    process.kill(-handle.pid, sig);
  } catch {
    // already gone
  }
}

function isUnit(h: ProcessHandle): h is UnitHandle {
  return 'unit' in h;
}

/**
 * Sandbox and tests: local processes and a simulated machine. The boot ID is a file the
 * "machine" owns; a reboot is a request to that machine (a file it watches), which then does
 * what a real host does: stops this agent, starts a new boot (new boot ID in the file, new
 * status.nodeInfo.bootID on the Node, as a kubelet would report it) and starts the agent again.
 * The agent never writes the Node's status itself: its identity may not (deploy/'s RBAC and
 * admission policy), and production has no such path either.
 */
export class LocalExecutor implements HostExecutor {
  readonly kind = 'local' as const;

  constructor(
    readonly workDir: string,
    private readonly bootIdFile: string,
    /** Created to ask the simulated machine for a reboot; undefined: Reboot fails. */
    private readonly rebootRequestFile: string | undefined,
    private readonly procRoot = '/proc',
  ) {}

  programPath(path: string): string {
    return path;
  }

  async launch(req: LaunchRequest): Promise<LaunchResult> {
    await mkdir(this.workDir, { recursive: true });
    // The agent's PATH: a sandbox's tools are where its user has them.
    const env = actionEnv(req.id, process.env['PATH'] ?? HOST_PATH);
    const argv = wrapperArgv(req.argv, { exit: req.files.exit, output: req.files.output }, true);
    return launchDetached(argv, this.workDir, env, req, this.procRoot);
  }

  async probe(handle: ProcessHandle): Promise<Probe> {
    if (isUnit(handle)) throw new Error('the local executor runs no units');
    return { active: await isAlive(handle.pid, handle.startTime, this.procRoot) };
  }

  async kill(handle: ProcessHandle, sig: NodeJS.Signals): Promise<void> {
    if (!isUnit(handle)) await killGroup(handle, sig, this.procRoot);
  }

  async bootID(): Promise<string> {
    try {
      const id = (await readFile(this.bootIdFile, 'utf8')).trim();
      if (id !== '') return id;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const id = randomUUID();
    await writeFile(this.bootIdFile, `${id}\n`);
    return id;
  }

  /** Like `systemctl reboot`: returns once asked; the machine stops this process later. */
  async reboot(): Promise<void> {
    if (this.rebootRequestFile === undefined) {
      throw new Error('no machine to reboot: --executor local needs --reboot-request-file');
    }
    await mkdir(dirname(this.rebootRequestFile), { recursive: true });
    // Written under another name and renamed: a watcher never sees a half-written request.
    const tmp = `${this.rebootRequestFile}.${process.pid}.${randomUUID().slice(0, 8)}.tmp`;
    await writeFile(tmp, `${await this.bootID()}\n`);
    await rename(tmp, this.rebootRequestFile);
  }
}

export interface NsenterOptions {
  /** Whose namespaces are the host's: 1 in production; a test's own "host" in tests. */
  readonly targetPid?: number;
  /** 'auto': systemd-run when the target's root has /run/systemd/system (sd_booted()). */
  readonly systemd?: 'auto' | boolean;
  readonly procRoot?: string;
}

/**
 * Production: programs run in the host's mount, UTS, IPC, network and PID namespaces by
 * entering those of the target pid. `hostWorkDir` is where workDir (a hostPath) is on the host.
 */
export class NsenterExecutor implements HostExecutor {
  readonly kind = 'host' as const;
  private readonly targetPid: number;
  private readonly procRoot: string;
  private readonly systemd: boolean;

  constructor(
    readonly workDir: string,
    private readonly hostWorkDir: string,
    private readonly bootIdFile = '/proc/sys/kernel/random/boot_id',
    opts: NsenterOptions = {},
  ) {
    this.targetPid = opts.targetPid ?? 1;
    this.procRoot = opts.procRoot ?? '/proc';
    const mode = opts.systemd ?? 'auto';
    this.systemd = mode === 'auto' ? hostRunsSystemd(this.procRoot, this.targetPid) : mode;
  }

  get usesSystemd(): boolean {
    return this.systemd;
  }

  programPath(path: string): string {
    return path.startsWith(this.workDir)
      ? join(this.hostWorkDir, path.slice(this.workDir.length))
      : path;
  }

  private host(argv: readonly string[]): string[] {
    return nsenterArgv(this.targetPid, argv);
  }

  async launch(req: LaunchRequest): Promise<LaunchResult> {
    await mkdir(this.workDir, { recursive: true });
    const env = actionEnv(req.id, HOST_PATH);
    const paths = {
      exit: this.programPath(req.files.exit),
      output: this.programPath(req.files.output),
    };
    if (!this.systemd) {
      // cwd: entering the mount namespace puts the program at the host's root anyway.
      return launchDetached(
        this.host(wrapperArgv(req.argv, paths, true)),
        '/',
        env,
        req,
        this.procRoot,
      );
    }
    const handle = { unit: unitName(req.key) };
    await req.record(handle);
    const argv = wrapperArgv(req.argv, paths, false);
    const r = await this.run(systemdRunArgv({ unit: handle.unit, id: req.id, env, argv }));
    // Timed out or killed: whether the unit started is unknown; the probe will tell.
    if (r.exitCode === 0 || r.exitCode === undefined) return { ok: true, handle };
    return { ok: false, error: `systemd-run: exit ${r.exitCode}: ${r.output.slice(-1024)}` };
  }

  private async run(argv: readonly string[]): Promise<{ exitCode?: number; output: string }> {
    const cmd = this.host(argv);
    const r = await execa(cmd[0] ?? 'nsenter', cmd.slice(1), {
      reject: false,
      all: true,
      stdin: 'ignore',
      timeout: 60_000,
      env: { PATH: process.env['PATH'] ?? HOST_PATH, LANG: 'C.UTF-8' },
      extendEnv: false,
    });
    const spawnFailed = r.failed && r.exitCode === undefined && r.signal === undefined;
    if (spawnFailed) throw new Error(r.originalMessage ?? r.shortMessage);
    return { ...(r.exitCode === undefined ? {} : { exitCode: r.exitCode }), output: r.all };
  }

  async probe(handle: ProcessHandle): Promise<Probe> {
    if (!isUnit(handle)) {
      return { active: await isAlive(handle.pid, handle.startTime, this.procRoot) };
    }
    const r = await this.run(systemctlShowArgv(handle.unit));
    if (r.exitCode !== 0) throw new Error(`systemctl show: ${r.output.slice(-512)}`);
    return parseSystemctlShow(r.output);
  }

  async kill(handle: ProcessHandle, sig: NodeJS.Signals): Promise<void> {
    if (!isUnit(handle)) {
      await killGroup(handle, sig, this.procRoot);
      return;
    }
    await this.run(systemctlKillArgv(handle.unit, sig)); // fails once the unit is gone: fine
  }

  async bootID(): Promise<string> {
    return (await readFile(this.bootIdFile, 'utf8')).trim();
  }

  async reboot(): Promise<void> {
    const r = await this.run(['systemctl', 'reboot']);
    if (r.exitCode !== 0) {
      throw new Error(
        `systemctl reboot failed: exit ${String(r.exitCode)}: ${r.output.slice(-512)}`,
      );
    }
  }
}

/** sd_booted(): the target's root has /run/systemd/system. */
export function hostRunsSystemd(procRoot: string, targetPid: number): boolean {
  return existsSync(join(procRoot, String(targetPid), 'root', 'run', 'systemd', 'system'));
}
