// One simulated node of a chaos row: the Node (KWOK), its machine (test/support/machine.ts:
// reboots, counted) and its agent process, which the machine and the faults both stop and
// start, one at a time. The actions' side effects land in files of its work dir, which the
// suite counts itself.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, watch } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AgentProcess } from '../support/agent-process.js';
import { simulateReboot } from '../support/kube.js';
import { SimulatedMachine } from '../support/machine.js';
import { startChaosAgent } from './agent.js';

export type SideStep = 'script' | 'run';

/** The file (in the action's working directory: the agent's work dir) each step appends to. */
export const sideFile = (step: SideStep): string => `chaos-${step}.log`;

export interface ChaosNodeOptions {
  readonly name: string;
  readonly home: string;
  readonly token: string;
  readonly kubeconfig: string;
  readonly buildDir: string;
  readonly proxyPort: number;
  readonly caFile: string;
  readonly timeline: (what: string) => void;
  readonly onReboot: (node: string, phase: 'down' | 'up') => void;
}

export class ChaosNode {
  readonly workDir: string;
  readonly machine: SimulatedMachine;
  /** Every agent process this node ran, the current one last. */
  readonly agents: AgentProcess[] = [];
  /** True while the machine is down (between stopping the agent and booting again). */
  down = false;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(private readonly opts: ChaosNodeOptions) {
    this.workDir = join(opts.home, 'work');
    this.machine = new SimulatedMachine({
      bootIdFile: join(opts.home, 'boot_id'),
      rebootRequestFile: join(opts.home, 'reboot-request'),
      reportBootID: (id) => simulateReboot(opts.name, id),
      stopAgent: () => this.serial(() => this.stopAgent()),
      startAgent: () => this.serial(() => this.startAgent()),
      pollMs: 100,
      downMs: 300,
      onReboot: (phase) => {
        this.down = phase === 'down';
        opts.timeline(`machine ${opts.name} ${phase}`);
        opts.onReboot(opts.name, phase);
      },
      onError: (err) => {
        opts.timeline(`machine ${opts.name} error: ${String(err)}`);
      },
    });
  }

  get name(): string {
    return this.opts.name;
  }

  get agent(): AgentProcess | undefined {
    return this.agents.at(-1);
  }

  /** Powers on with the Node's boot ID and starts the agent. */
  async boot(bootID: string): Promise<void> {
    await mkdir(this.workDir, { recursive: true });
    await writeFile(join(this.opts.home, 'token'), this.opts.token);
    await this.machine.start(bootID);
    await this.serial(() => this.startAgent());
  }

  /** Side-effect lines of a step so far (each run of the step appends one). */
  sideCount(step: SideStep): number {
    const file = join(this.workDir, sideFile(step));
    if (!existsSync(file)) return 0;
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '').length;
  }

  /**
   * SIGKILL of the agent (a crash, an OOM kill); the kubelet starts the container again after
   * `restartMs`, unless the machine is down by then (it starts the agent when it boots).
   */
  async killAgent(restartMs = 500): Promise<void> {
    this.sigkillAgent('');
    await this.restartAgent(restartMs);
  }

  private sigkillAgent(why: string): void {
    const agent = this.agent;
    this.opts.timeline(`SIGKILL agent ${this.name} (pid ${String(agent?.proc.pid)})${why}`);
    agent?.signal('SIGKILL');
  }

  private async restartAgent(afterMs: number): Promise<void> {
    await sleep(afterMs);
    await this.serial(async () => {
      if (this.down || this.closed || this.running()) return;
      await this.startAgent();
    });
  }

  /**
   * SIGKILL of the agent the moment it starts writing the ledger record of action `id` (the
   * temp file of its write, or the record itself: inotify, no polling), then the kubelet's
   * restart. The record's file name is the ledger's on-disk format (agent/actions/ledger.ts):
   * <state dir>/ledger/<first 40 hex of sha256(id)>.json, written through a temp file beside
   * it. Resolves with the file name the kill answered, and when.
   */
  async killAgentOnLedgerWrite(
    id: string,
    timeoutMs = 60_000,
  ): Promise<{ file: string; at: number }> {
    const dir = join(this.opts.home, 'state', 'ledger');
    await mkdir(dir, { recursive: true });
    const key = createHash('sha256').update(id).digest('hex').slice(0, 40);
    const killed = await new Promise<{ file: string; at: number }>((resolve, reject) => {
      const timer = setTimeout(() => {
        w.close();
        reject(new Error(`no ledger write of ${id} within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      const w = watch(dir, (_event, name) => {
        if (name?.startsWith(`${key}.json`) !== true) return;
        // Synchronously, in the event's callback: as close to the write as a test gets.
        this.sigkillAgent(` on ledger file ${name}`);
        clearTimeout(timer);
        w.close();
        resolve({ file: name, at: Date.now() });
      });
    });
    await this.restartAgent(500);
    return killed;
  }

  private running(): boolean {
    const p = this.agent?.proc;
    return p !== undefined && p.exitCode === null && p.signalCode === null;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async startAgent(): Promise<void> {
    if (this.closed) return;
    const home = this.opts.home;
    const agent = await startChaosAgent({
      nodeName: this.name,
      kubeconfig: this.opts.kubeconfig,
      buildDir: this.opts.buildDir,
      args: [
        ...['--state-dir', join(home, 'state'), '--work-dir', this.workDir],
        ...['--coordinator-url', `wss://localhost:${this.opts.proxyPort}`],
        ...['--coordinator-ca', this.opts.caFile, '--token-file', join(home, 'token')],
        ...['--executor', 'local', '--boot-id-file', join(home, 'boot_id')],
        ...['--reboot-request-file', join(home, 'reboot-request')],
        ...['--coordinator-unreachable-threshold', '3s'],
        // Debug: the link's reconnect attempts (and their delays) are in the row's logs.
        ...['--log-level', 'debug'],
      ],
    });
    this.agents.push(agent);
    this.opts.timeline(`agent ${this.name} started (pid ${String(agent.proc.pid)})`);
  }

  private async stopAgent(): Promise<void> {
    if (this.running()) await this.agent?.stop();
  }

  /** Stops the machine (a reboot under way finishes) and the agent. */
  async close(): Promise<void> {
    await this.machine.close();
    this.closed = true;
    await this.serial(async () => {
      for (const a of this.agents) {
        if (a.proc.exitCode === null && a.proc.signalCode === null) await a.stop();
      }
    });
  }
}
