// Where node-local actions run. Production enters the host's namespaces through PID 1 (the
// DaemonSet runs with hostPID); the sandbox and tests run them as local processes in a per-node
// work dir. The agent's action logic is the same for both.
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { setLongTimeout } from '../../shared/timers.js';

export interface ExecResult {
  /** null when the process was killed by a signal. */
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly timedOut: boolean;
  readonly cancelled: boolean;
  /** The process could not be started (missing program, not executable…). */
  readonly spawnError?: string;
}

export interface ExecRequest {
  readonly argv: readonly string[];
  readonly timeoutMs: number;
  readonly signal: AbortSignal;
  readonly onOutput: (chunk: string) => void;
}

export interface HostExecutor {
  readonly kind: 'local' | 'host';
  /** A directory the agent can write and the executed programs can read (scripts go here). */
  readonly workDir: string;
  /** How a path under workDir is seen by the executed program. */
  programPath(path: string): string;
  exec(req: ExecRequest): Promise<ExecResult>;
  /** Starts a reboot of the node; production never gets to see it resolve for long. */
  reboot(): Promise<void>;
  /** The current boot of the node. */
  bootID(): Promise<string>;
}

const KILL_GRACE_MS = 5_000;

/** Kills the whole process group: a script's children must not outlive a cancel. */
function killGroup(pid: number | undefined, sig: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, sig);
  } catch {
    // already gone
  }
}

async function execGroup(
  argv: readonly string[],
  cwd: string,
  req: ExecRequest,
): Promise<ExecResult> {
  const [file, ...args] = argv;
  if (file === undefined) throw new Error('empty command');
  // detached: its own process group, so timeout and cancel reach every descendant.
  const child = execa(file, args, {
    cwd,
    detached: true,
    reject: false,
    buffer: false,
    stdin: 'ignore',
    all: true,
    env: { NOMA_ACTION: '1' },
    extendEnv: true,
  });
  let timedOut = false;
  let cancelled = false;
  const stop = (why: 'timeout' | 'cancel'): void => {
    if (why === 'timeout') timedOut = true;
    else cancelled = true;
    killGroup(child.pid, 'SIGTERM');
    setTimeout(() => {
      killGroup(child.pid, 'SIGKILL');
    }, KILL_GRACE_MS).unref();
  };
  // An action's timeout may be up to 720h: past what Node's setTimeout can wait.
  const timer = setLongTimeout(() => {
    stop('timeout');
  }, req.timeoutMs);
  const onAbort = (): void => {
    stop('cancel');
  };
  if (req.signal.aborted) onAbort();
  else req.signal.addEventListener('abort', onAbort, { once: true });
  child.all.setEncoding('utf8');
  child.all.on('data', (chunk: string) => {
    req.onOutput(chunk);
  });
  try {
    const result = await child;
    // The leader is gone; anything it left in its group goes too.
    killGroup(child.pid, 'SIGKILL');
    const spawnError =
      result.failed && result.exitCode === undefined && result.signal === undefined
        ? (result.originalMessage ?? result.shortMessage)
        : undefined;
    return {
      exitCode: result.exitCode ?? null,
      signal: result.signal ?? null,
      timedOut,
      cancelled,
      ...(spawnError === undefined ? {} : { spawnError }),
    };
  } finally {
    timer.clear();
    req.signal.removeEventListener('abort', onAbort);
  }
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
  ) {}

  programPath(path: string): string {
    return path;
  }

  async exec(req: ExecRequest): Promise<ExecResult> {
    await mkdir(this.workDir, { recursive: true });
    return execGroup(req.argv, this.workDir, req);
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
    const tmp = `${this.rebootRequestFile}.${process.pid}.tmp`;
    await writeFile(tmp, `${await this.bootID()}\n`);
    await rename(tmp, this.rebootRequestFile);
  }
}

/**
 * Production: programs run in the host's mount, UTS, IPC, network and PID namespaces by
 * entering those of PID 1. `hostWorkDir` is where workDir (a hostPath) is on the host.
 */
export class NsenterExecutor implements HostExecutor {
  readonly kind = 'host' as const;

  constructor(
    readonly workDir: string,
    private readonly hostWorkDir: string,
    private readonly bootIdFile = '/proc/sys/kernel/random/boot_id',
  ) {}

  programPath(path: string): string {
    return path.startsWith(this.workDir)
      ? join(this.hostWorkDir, path.slice(this.workDir.length))
      : path;
  }

  private argv(argv: readonly string[]): string[] {
    return [
      'nsenter',
      '--target',
      '1',
      '--mount',
      '--uts',
      '--ipc',
      '--net',
      '--pid',
      '--',
      ...argv,
    ];
  }

  async exec(req: ExecRequest): Promise<ExecResult> {
    await mkdir(this.workDir, { recursive: true });
    // cwd is the agent's; the program sees the host's root after entering its mount namespace.
    return execGroup(this.argv(req.argv), '/', req);
  }

  async bootID(): Promise<string> {
    return (await readFile(this.bootIdFile, 'utf8')).trim();
  }

  async reboot(): Promise<void> {
    const result = await execGroup(this.argv(['systemctl', 'reboot']), '/', {
      argv: [],
      timeoutMs: 60_000,
      signal: new AbortController().signal,
      onOutput: () => undefined,
    });
    if (result.exitCode !== 0) {
      throw new Error(
        `systemctl reboot failed: ${result.spawnError ?? `exit ${String(result.exitCode)}`}`,
      );
    }
  }
}
