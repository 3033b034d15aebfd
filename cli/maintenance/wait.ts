// `--wait`: reads the maintenance until the coordinator has acted, the timeout passes, or the
// user interrupts. Polling, not a watch: one object, read every half second, for minutes at most.
import { setTimeout as sleep } from 'node:timers/promises';
import type { NodeMaintenance } from '../../shared/api/index.js';
import type { CliIO } from '../io.js';
import { CommandFailed, readMaintenance, type MaintenanceRef } from './api.js';
import type { Progress } from './plan.js';

const POLL_MS = 500;

/** Waits until `probe` says done; throws CommandFailed on timeout, interrupt or deletion. */
export async function waitUntil(
  ref: MaintenanceRef,
  io: CliIO,
  timeoutMs: number,
  probe: (m: NodeMaintenance) => Progress,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  const stop = Symbol('stop');
  const stopped = io.interrupted.then(() => stop);
  for (;;) {
    const m = await readMaintenance(ref);
    if (m === undefined)
      throw new CommandFailed(`${ref.namespace}/${ref.name} was deleted while waiting`);
    const p = probe(m);
    if (p.done) return p.text;
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new CommandFailed(
        `timed out after ${Math.round(timeoutMs / 1000)}s waiting for ${p.waitingFor} (is the coordinator running?)`,
      );
    }
    if ((await Promise.race([sleep(Math.min(POLL_MS, left)), stopped])) === stop) {
      throw new CommandFailed(`interrupted while waiting for ${p.waitingFor}`);
    }
  }
}
