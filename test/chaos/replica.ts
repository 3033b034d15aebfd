// One coordinator replica as a Deployment runs it: a process (the TypeScript source through
// tsx) with a fixed identity (the pod name) and agent port (the pod's), restarted when it
// exits, as the kubelet restarts a container. Unlike test/support/coordinator-process.ts it
// does not wait to lead: a standby is started too. Logs are kept with the time each line came.
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { entry } from './agent.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

export interface LogLine {
  readonly at: number;
  readonly replica: string;
  readonly line: string;
}

export interface ReplicaOptions {
  readonly identity: string;
  readonly agentPort: number;
  readonly kubeconfig: string;
  /** Compiled coordinator ('' : the source through tsx). */
  readonly buildDir: string;
  /** Everything but --kubeconfig and --http-port. */
  readonly args: readonly string[];
  /** How long after an exit the replica is started again (the kubelet's restart). */
  readonly restartDelayMs: number;
  readonly timeline: (what: string) => void;
}

export class Replica {
  private proc: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private retired = false;
  httpPort: number | undefined;
  readonly logs: LogLine[] = [];
  /** Every exit: when, and with what. */
  readonly exits: { at: number; code: number | null; signal: string | null }[] = [];
  starts = 0;
  stopped = false;

  constructor(readonly opts: ReplicaOptions) {}

  get identity(): string {
    return this.opts.identity;
  }

  get pid(): number | undefined {
    return this.proc?.exitCode === null && this.proc.signalCode === null
      ? this.proc.pid
      : undefined;
  }

  /** Starts the process; resolves once its health server listens (leading or not). */
  async start(timeoutMs = 30_000): Promise<void> {
    this.starts += 1;
    this.httpPort = undefined;
    const proc = spawn(
      process.execPath,
      [
        ...entry(this.opts.buildDir, 'coordinator'),
        ...['--kubeconfig', this.opts.kubeconfig, '--http-port', '0', ...this.opts.args],
      ],
      {
        cwd: ROOT,
        // /agents open to the suite (a local process it owns), as the integration tests run it;
        // through the environment, which a coordinator without the setting ignores.
        env: { ...process.env, NOMA_LOG_LEVEL: 'info', NOMA_ENDPOINT_AUTH: 'off' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    this.proc = proc;
    this.exited = new Promise((res) => {
      proc.once('exit', (code, signal) => {
        this.exits.push({ at: Date.now(), code, signal });
        this.opts.timeline(`${this.identity} exited (${signal ?? String(code)})`);
        res();
        void this.restartLater();
      });
    });
    let buffer = '';
    const onData = (chunk: Buffer): void => {
      buffer += chunk.toString();
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) {
        this.logs.push({ at: Date.now(), replica: this.identity, line });
        const m = /"httpPort":(\d+)/.exec(line);
        if (m?.[1] !== undefined) this.httpPort = Number(m[1]);
        if (line.includes('became leader')) this.opts.timeline(`${this.identity} became leader`);
        if (line.includes('lost leadership'))
          this.opts.timeline(`${this.identity} lost leadership`);
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    const deadline = Date.now() + timeoutMs;
    while (!this.listening()) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(`coordinator ${this.identity} exited while starting:\n${this.tail(40)}`);
      }
      if (Date.now() > deadline) throw new Error(`coordinator ${this.identity} did not start`);
      await sleep(50);
    }
  }

  private listening(): boolean {
    return this.httpPort !== undefined;
  }

  private isRetired(): boolean {
    return this.retired;
  }

  private async restartLater(): Promise<void> {
    if (this.isRetired()) return;
    await sleep(this.opts.restartDelayMs);
    if (this.isRetired()) return;
    await this.start().catch((err: unknown) => {
      this.opts.timeline(`${this.identity} restart failed: ${String(err).slice(0, 200)}`);
    });
  }

  signal(sig: NodeJS.Signals): void {
    if (sig === 'SIGSTOP') this.stopped = true;
    if (sig === 'SIGCONT') this.stopped = false;
    this.opts.timeline(`${sig} ${this.identity} (pid ${String(this.pid)})`);
    this.proc?.kill(sig);
  }

  /** The agents this replica says are connected (undefined: it did not answer). */
  async agents(): Promise<string[] | undefined> {
    if (this.httpPort === undefined || this.pid === undefined || this.stopped) return undefined;
    try {
      const res = await fetch(`http://127.0.0.1:${this.httpPort}/agents`, {
        signal: AbortSignal.timeout(2_000),
      });
      const body = (await res.json()) as { agents: { node: string }[] };
      return body.agents.map((a) => a.node);
    } catch {
      return undefined;
    }
  }

  /** Stops it for good (no restart): SIGCONT first in case it is stopped, then SIGKILL. */
  async retire(): Promise<void> {
    this.retired = true;
    if (this.pid === undefined) return;
    this.proc?.kill('SIGCONT');
    this.proc?.kill('SIGKILL');
    await this.exited;
  }

  tail(n: number): string {
    return this.logs
      .slice(-n)
      .map((l) => l.line)
      .join('\n');
  }
}
