// A sandbox component (agent, coordinator) as a child process in its own process group:
// its output goes to a log file and is scanned line by line; stopping it signals the whole
// group, so nothing it started is left behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ChildOptions {
  readonly name: string;
  readonly argv: readonly string[];
  readonly cwd: string;
  readonly env: NodeJS.ProcessEnv;
  readonly logFile: string;
}

export class SandboxChild {
  readonly proc: ChildProcess;
  readonly exited: Promise<number | null>;
  private readonly watchers = new Set<(line: string) => void>();

  constructor(readonly opts: ChildOptions) {
    const [cmd, ...args] = opts.argv;
    if (cmd === undefined) throw new Error(`${opts.name}: empty argv`);
    const log = createWriteStream(opts.logFile, { flags: 'a' });
    // detached: its own process group, which stop() signals as a whole; a terminal's Ctrl-C
    // reaches only the sandbox, which then stops its children in order.
    this.proc = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    for (const stream of [this.proc.stdout, this.proc.stderr]) {
      if (stream === null) continue;
      stream.pipe(log, { end: false });
      createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
        for (const w of this.watchers) w(line);
      });
    }
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', (code) => {
        log.end();
        resolve(code);
      });
    });
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Resolves with the first match of `re` in the output (group 1 if any). */
  waitForLine(re: RegExp, timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(
            `${this.opts.name}: no ${String(re)} after ${timeoutMs} ms (log: ${this.opts.logFile})`,
          ),
        );
      }, timeoutMs);
      const onLine = (line: string) => {
        const m = re.exec(line);
        if (m !== null) {
          done();
          resolve(m[1] ?? m[0]);
        }
      };
      const onExit = (code: number | null) => {
        done();
        reject(new Error(`${this.opts.name} exited (${String(code)}); log: ${this.opts.logFile}`));
      };
      const done = () => {
        clearTimeout(timer);
        this.watchers.delete(onLine);
        this.proc.off('exit', onExit);
      };
      this.watchers.add(onLine);
      this.proc.once('exit', onExit);
    });
  }

  private signalGroup(sig: NodeJS.Signals): void {
    const pid = this.proc.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, sig);
    } catch {
      // the group is gone
    }
  }

  /** SIGTERM to the group, SIGKILL after `graceMs`; resolves when the process has exited. */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.running) this.signalGroup('SIGTERM');
    const timedOut = await Promise.race([
      this.exited.then(() => false),
      sleep(graceMs).then(() => true),
    ]);
    // Also after a clean exit: anything left in its group goes.
    this.signalGroup('SIGKILL');
    if (timedOut) await this.exited;
  }

  /** Synchronous last resort (process 'exit' handler). */
  killNow(): void {
    this.signalGroup('SIGKILL');
  }
}
