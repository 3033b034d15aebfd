// Issue 13's fault-injection suite: `npm run chaos`. Each row builds a fresh world (rig.ts: two
// coordinator replicas on one Lease, three simulated nodes with real agents, the third cordoned
// before), applies Script → Reboot → Run → Complete to the three nodes, injects its fault at its
// fault point (faults.ts), waits for the maintenance to end and checks (evaluate.ts): every node
// Succeeded, each step ran exactly once (side-effect files, boot counts), nodes returned as they
// were, status never went back, and how long recovery took. The table and the RESULT line come
// from reporter.ts. CHAOS_ROWS=ci|all|<id,…> picks rows (test/chaos/README.md).
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { errorText, evaluate, type RowResult } from './evaluate.js';
import { selectFaults, type Fault, type FaultOutcome } from './faults.js';
import { writeRowLogs } from './logs.js';
import { Rig } from './rig.js';

/** How long a row waits for its maintenance to end once the fault is over. */
const FINISH_MS = Number(process.env['CHAOS_FINISH_S'] ?? '90') * 1000;
/** A coordinator replica comes back this long after it died: longer than its 3 s lease. */
const RESTART_MS = 5_000;

async function runRow(fault: Fault): Promise<RowResult> {
  const logDir = join(inject('chaosLogDir'), fault.id);
  const rig = new Rig({
    row: fault.id,
    kubeconfig: inject('kubeconfig'),
    clusterDir: inject('chaosClusterDir'),
    buildDir: inject('chaosBuildDir'),
    restartDelayMs: fault.restartDelayMs ?? RESTART_MS,
  });
  let result: RowResult | undefined;
  try {
    await rig.setup();
    // Waiting for the fault point starts before the maintenance exists: no point is missed.
    type Injected = { outcome: FaultOutcome | undefined; error: unknown };
    const injected = fault.inject(rig).then(
      (outcome): Injected => ({ outcome, error: undefined }),
      (error: unknown): Injected => ({ outcome: undefined, error }),
    );
    await rig.applyMaintenance();
    const { outcome, error } = await injected;
    if (error !== undefined) rig.note(`fault failed: ${errorText(error)}`);
    await rig.waitFinished(FINISH_MS);
    result = await evaluate(rig, outcome, error, logDir, fault.id, fault.point);
    return result;
  } catch (err) {
    rig.note(`row error: ${errorText(err)}`);
    result = {
      id: fault.id,
      point: fault.point,
      ok: false,
      checks: [{ name: 'setup', ok: false, detail: errorText(err).slice(0, 400) }],
      repeatedActions: 0,
      lostNodes: 0,
      rollbacks: 0,
      recoveryS: undefined,
      stallS: undefined,
      durationS: (Date.now() - rig.t0) / 1000,
      detail: '',
      logDir,
    };
    return result;
  } finally {
    await rig.teardown();
    await writeRowLogs(rig, logDir, result).catch(() => undefined);
  }
}

describe('chaos: faults during Script → Reboot → Run → Complete on 3 nodes, 2 coordinators', () => {
  for (const fault of selectFaults(process.env['CHAOS_ROWS'])) {
    it(`row ${fault.id}`, async ({ task }) => {
      const result = await runRow(fault);
      task.meta.chaos = result;
      const failed = result.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);
      console.log(
        `${fault.id}: ${result.ok ? 'PASS' : 'FAIL'} in ${result.durationS.toFixed(0)} s; ${result.detail}` +
          (failed.length > 0 ? `\n  ${failed.join('\n  ')}\n  logs: ${result.logDir}` : ''),
      );
      expect(failed).toEqual([]);
    });
  }
});
