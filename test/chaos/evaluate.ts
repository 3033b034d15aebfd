// The checks of one row, from what the suite saw itself: the final status, the side-effect
// files and the machines' boot counts (not noma's own status), the Nodes as they ended, every
// status version (rollbacks), and the time from the fault to the next progress.
import type { V1Node } from '@kubernetes/client-node';
import { CLAIM_ANNOTATION, MAINTENANCE_LABEL } from '../../shared/maintenance-keys.js';
import type { Check, FaultOutcome } from './faults.js';
import { longestStallSeconds, recoverySeconds, rollbacks } from './history.js';
import type { Rig } from './rig.js';

export interface RowResult {
  readonly id: string;
  readonly point: string;
  readonly ok: boolean;
  readonly checks: readonly Check[];
  readonly repeatedActions: number;
  readonly lostNodes: number;
  readonly rollbacks: number;
  readonly recoveryS: number | undefined;
  /** The longest any node went without progress after the fault (steps included). */
  readonly stallS: number | undefined;
  readonly durationS: number;
  readonly detail: string;
  readonly logDir: string;
}

/** An error's message (or the value, as JSON). */
export const errorText = (err: unknown): string =>
  err instanceof Error ? err.message : JSON.stringify(err);

const short = (node: string) => node.split('-').at(-1) ?? node;

function finalCheck(rig: Rig): { check: Check; lost: number } {
  const m = rig.latest;
  const nodes = m?.status?.nodes ?? [];
  const wrong = rig.nodes
    .map((n) => nodes.find((s) => s.name === n.name))
    .map((s, i) => ({ s, name: rig.node(i).name }))
    .filter(({ s }) => s?.phase !== 'Succeeded');
  const ok = m?.status?.phase === 'Completed' && wrong.length === 0;
  const detail = ok
    ? 'Completed, 3/3 Succeeded'
    : `${m?.status?.phase ?? 'no status'}; ` +
      wrong
        .map(
          ({ s, name }) =>
            `${short(name)} ${s?.phase ?? 'absent'}: ${(s?.message ?? '').slice(0, 160)}`,
        )
        .join('; ');
  return { check: { name: 'final', ok, detail }, lost: wrong.length };
}

/** Each node-local step ran exactly once per node, counted from its side effects. */
function onceCheck(rig: Rig): { check: Check; repeated: number } {
  let repeated = 0;
  const off: string[] = [];
  for (const n of rig.nodes) {
    const counts = {
      script: n.sideCount('script'),
      reboot: n.machine.reboots,
      run: n.sideCount('run'),
    };
    for (const [step, count] of Object.entries(counts)) {
      repeated += Math.max(0, count - 1);
      if (count !== 1) off.push(`${short(n.name)} ${step}×${count}`);
    }
  }
  const detail = off.length === 0 ? 'script, reboot, run once on each node' : off.join(', ');
  return { check: { name: 'once', ok: off.length === 0, detail }, repeated };
}

/** a and b back in service; c (cordoned before) still cordoned; no noma mark left. */
function returnedCheck(nodes: readonly V1Node[]): Check {
  const off: string[] = [];
  for (const [i, node] of nodes.entries()) {
    const name = short(node.metadata?.name ?? '');
    const wantCordoned = i === 2;
    if ((node.spec?.unschedulable === true) !== wantCordoned) {
      off.push(`${name} ${wantCordoned ? 'uncordoned (was cordoned before)' : 'still cordoned'}`);
    }
    const taints = (node.spec?.taints ?? []).filter((t) => t.key.startsWith('noma.dev/'));
    if (taints.length > 0) off.push(`${name} taints ${taints.map((t) => t.key).join(',')}`);
    if (node.metadata?.annotations?.[CLAIM_ANNOTATION] !== undefined) off.push(`${name} claimed`);
    if (node.metadata?.labels?.[MAINTENANCE_LABEL] !== undefined) off.push(`${name} labelled`);
  }
  return {
    name: 'cordon',
    ok: off.length === 0,
    detail: off.length === 0 ? 'a, b in service; c cordoned as before' : off.join(', '),
  };
}

export async function evaluate(
  rig: Rig,
  outcome: FaultOutcome | undefined,
  faultError: unknown,
  logDir: string,
  id: string,
  point: string,
): Promise<RowResult> {
  const checks: Check[] = [];
  if (faultError !== undefined) {
    checks.push({ name: 'fault', ok: false, detail: errorText(faultError).slice(0, 300) });
  }
  const final = finalCheck(rig);
  const once = onceCheck(rig);
  checks.push(final.check, once.check, returnedCheck(await rig.readNodes()));
  const back = rollbacks(rig.versions);
  const gaps =
    rig.statusRelists === 0
      ? ''
      : ` (the watch listed again ${rig.statusRelists}×: versions between may be missing)`;
  checks.push({
    name: 'no-rollback',
    ok: back.length === 0,
    detail:
      back.length === 0
        ? `${rig.versions.length} versions, none went back${gaps}`
        : back
            .slice(0, 3)
            .map(
              (r) =>
                `rv ${r.fromRv}→${r.toRv} at +${((r.at - rig.t0) / 1000).toFixed(1)}s: ${r.what.join('; ')}`,
            )
            .join(' | '),
  });
  let recoveryS: number | undefined;
  // Without a fault, from the first version: the reference for the rows with one.
  const first = rig.versions[0];
  let stallS = first === undefined ? undefined : longestStallSeconds(rig.versions, first.at);
  if (outcome !== undefined) {
    const from = outcome.recoverFrom ?? outcome.at;
    // A leader taken out: the first progress its successor (or itself, restarted) wrote.
    const led = rig.timeline.find((t) => t.at > outcome.at && t.what.endsWith('became leader'));
    const notBefore = outcome.successor === true ? (led?.at ?? Infinity) : from;
    stallS = longestStallSeconds(rig.versions, from, notBefore);
    recoveryS = recoverySeconds(rig.versions, outcome.at, from, outcome.focus, notBefore);
    checks.push({
      name: 'recovered',
      ok: recoveryS !== undefined,
      detail:
        recoveryS === undefined
          ? outcome.successor === true && !Number.isFinite(notBefore)
            ? 'no other replica took the lead after the fault'
            : 'no progress after the fault'
          : `next progress ${recoveryS.toFixed(1)} s after the fault${outcome.recoverFrom === undefined ? '' : ' ended'}`,
    });
    checks.push(...((await outcome.checks?.()) ?? []));
  }
  return {
    id,
    point,
    ok: checks.every((c) => c.ok),
    checks,
    repeatedActions: once.repeated,
    lostNodes: final.lost,
    rollbacks: back.length,
    recoveryS,
    stallS,
    durationS: (Date.now() - rig.t0) / 1000,
    detail: outcome?.detail ?? '',
    logDir,
  };
}
