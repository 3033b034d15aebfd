// The host under an agent that runs with `--executor local` (the sandbox and the tests): it
// owns the boot ID file and reboots when the agent asks for it through its reboot request
// file, doing what a real machine and its kubelet do: the agent goes down with the host, a new
// boot gets a new boot ID, the kubelet reports it as the Node's status.nodeInfo.bootID (here
// with an identity allowed to, never the agent's), and the agent starts again. The agent's
// code path is the production one: ask for a reboot, get stopped, find the new boot at start.
// Imports nothing from vitest: the sandbox uses it too.
import { randomUUID } from 'node:crypto';
import { existsSync, watch, type FSWatcher } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface MachineOptions {
  /** The agent's --boot-id-file. */
  readonly bootIdFile: string;
  /** The agent's --reboot-request-file. */
  readonly rebootRequestFile: string;
  /** The kubelet's part: the Node reports the new boot. */
  readonly reportBootID: (bootID: string) => Promise<unknown>;
  readonly stopAgent: () => Promise<unknown>;
  readonly startAgent: () => Promise<unknown>;
  /** How long the host stays down between stopping the agent and booting again. */
  readonly downMs?: number;
  /** fs.watch can miss events on some file systems; the request is also polled this often. */
  readonly pollMs?: number;
  readonly onReboot?: (phase: 'down' | 'up', bootID: string) => void;
  readonly onError?: (err: unknown) => void;
}

export class SimulatedMachine {
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private busy: Promise<void> | undefined;
  private closed = false;
  /** Reboots done so far. */
  reboots = 0;

  constructor(private readonly opts: MachineOptions) {}

  /** Powers on: the boot ID file holds `bootID` (the Node's), and requests are watched. */
  async start(bootID: string): Promise<void> {
    await mkdir(dirname(this.opts.rebootRequestFile), { recursive: true });
    await rm(this.opts.rebootRequestFile, { force: true });
    await writeFile(this.opts.bootIdFile, `${bootID}\n`);
    const name = basename(this.opts.rebootRequestFile);
    this.watcher = watch(dirname(this.opts.rebootRequestFile), (_event, file) => {
      if (file === name) this.check();
    });
    this.timer = setInterval(() => {
      this.check();
    }, this.opts.pollMs ?? 500);
  }

  private check(): void {
    if (this.closed || this.busy !== undefined || !existsSync(this.opts.rebootRequestFile)) return;
    this.busy = this.reboot()
      .catch((err: unknown) => this.opts.onError?.(err))
      .finally(() => {
        this.busy = undefined;
      });
  }

  private async reboot(): Promise<void> {
    await rm(this.opts.rebootRequestFile, { force: true });
    const bootID = randomUUID();
    this.opts.onReboot?.('down', bootID);
    await this.opts.stopAgent();
    await sleep(this.opts.downMs ?? 500);
    await writeFile(this.opts.bootIdFile, `${bootID}\n`);
    await this.opts.reportBootID(bootID);
    this.reboots += 1;
    if (this.closed) return;
    await this.opts.startAgent();
    this.opts.onReboot?.('up', bootID);
  }

  /** Stops watching; a reboot in progress finishes first (its agent may be started). */
  async close(): Promise<void> {
    this.closed = true;
    this.watcher?.close();
    clearInterval(this.timer);
    await this.busy;
  }
}
