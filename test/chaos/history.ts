// What the fault-injection suite concludes from the versions of a NodeMaintenance it watched:
// whether status ever went back, and how long after a fault it moved forward again. Pure (no
// I/O), so that the rules are table-tested (history.test.ts) apart from the slow suite.
import type { NodeMaintenance, NodeStatus } from '../../shared/api/index.js';

/** One version of the maintenance as the watch delivered it. */
export interface Version {
  /** Date.now() when the test received it. */
  readonly at: number;
  readonly rv: number;
  readonly m: NodeMaintenance;
}

/**
 * Order of a node's phases (docs/state-machine.md): Pending → Cordoned → Draining → Drained →
 * InAction (then by action index) → a final phase. Failed → Restored and Failed → Pending
 * (retry) are legal only on request; the suite requests neither, so any move out of a final
 * phase is a step back.
 */
const NODE_RANK: Record<NodeStatus['phase'], number> = {
  Pending: 0,
  Cordoned: 1,
  Draining: 2,
  Drained: 3,
  InAction: 4,
  Succeeded: 5,
  Failed: 5,
  Restored: 6,
};

const MAINTENANCE_RANK: Record<string, number> = {
  Pending: 0,
  Running: 1,
  Paused: 1,
  Halted: 1,
  Completed: 2,
  Failed: 2,
};

/** [phase rank, action index (InAction only)]: compared in order. */
export function nodeProgress(s: NodeStatus): [number, number] {
  return [NODE_RANK[s.phase], s.phase === 'InAction' ? (s.currentActionIndex ?? 0) : -1];
}

function compare(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

const describeNode = (s: NodeStatus): string =>
  s.phase === 'InAction' ? `InAction(${s.currentActionIndex ?? '?'})` : s.phase;

/** Every way one node's entry went back from `prev` to `next`, in words. */
export function nodeRegressions(prev: NodeStatus, next: NodeStatus | undefined): string[] {
  if (next === undefined) return [`${prev.name}: entry gone (was ${describeNode(prev)})`];
  const out: string[] = [];
  const [pr, nr] = [nodeProgress(prev), nodeProgress(next)];
  if (compare(nr, pr) < 0 || (pr[0] === 5 && prev.phase !== next.phase)) {
    out.push(`${prev.name}: ${describeNode(prev)} → ${describeNode(next)}`);
  }
  for (const [key, was] of Object.entries(prev.phaseTimes ?? {})) {
    const now = (next.phaseTimes as Record<string, string | undefined> | undefined)?.[key];
    if (now === undefined) out.push(`${prev.name}: phaseTimes.${key} dropped (was ${was})`);
    else if (now < was) out.push(`${prev.name}: phaseTimes.${key} ${was} → ${now}`);
  }
  if ((next.attempt ?? 1) < (prev.attempt ?? 1)) {
    out.push(`${prev.name}: attempt ${prev.attempt ?? 1} → ${next.attempt ?? 1}`);
  }
  const before = prev.bootIDBeforeReboot;
  if (before !== undefined && next.bootIDBeforeReboot !== before) {
    out.push(`${prev.name}: bootIDBeforeReboot ${before} → ${next.bootIDBeforeReboot ?? 'unset'}`);
  }
  return out;
}

/** Every way the status went back from one version to the next. */
export function regressions(prev: NodeMaintenance, next: NodeMaintenance): string[] {
  const out: string[] = [];
  const [pp, np] = [prev.status?.phase, next.status?.phase];
  if (
    pp !== undefined &&
    (np === undefined || (MAINTENANCE_RANK[np] ?? 0) < (MAINTENANCE_RANK[pp] ?? 0))
  ) {
    out.push(`maintenance: ${pp} → ${np ?? 'unset'}`);
  }
  if ((prev.status?.observedNodes?.length ?? 0) > (next.status?.observedNodes?.length ?? 0)) {
    out.push('maintenance: observedNodes shrank');
  }
  const nextNodes = new Map((next.status?.nodes ?? []).map((n) => [n.name, n]));
  for (const p of prev.status?.nodes ?? []) out.push(...nodeRegressions(p, nextNodes.get(p.name)));
  return out;
}

export interface Rollback {
  readonly at: number;
  readonly fromRv: number;
  readonly toRv: number;
  readonly what: readonly string[];
}

/** Each pair of consecutive versions where status went back (one entry per such write). */
export function rollbacks(versions: readonly Version[]): Rollback[] {
  const out: Rollback[] = [];
  for (let i = 1; i < versions.length; i++) {
    const [a, b] = [versions[i - 1], versions[i]];
    if (a === undefined || b === undefined) continue;
    const what = regressions(a.m, b.m);
    if (what.length > 0) out.push({ at: b.at, fromRv: a.rv, toRv: b.rv, what });
  }
  return out;
}

/** The progress of the whole maintenance, or of one node (`focus`), as a comparable list. */
export function progressKey(m: NodeMaintenance, focus?: string): number[] {
  const nodes = (m.status?.nodes ?? []).filter((n) => focus === undefined || n.name === focus);
  const perNode = nodes
    .slice()
    .sort((x, y) => x.name.localeCompare(y.name))
    .flatMap((n) => nodeProgress(n));
  return [MAINTENANCE_RANK[m.status?.phase ?? 'Pending'] ?? 0, ...perNode];
}

/** True when `next` is ahead of `base` for at least one node (or the maintenance's phase). */
export function advanced(base: NodeMaintenance | undefined, next: NodeMaintenance, focus?: string) {
  if (base === undefined) return (next.status?.nodes?.length ?? 0) > 0;
  const b = new Map((base.status?.nodes ?? []).map((n) => [n.name, nodeProgress(n)]));
  const moved = (next.status?.nodes ?? []).some((n) => {
    if (focus !== undefined && n.name !== focus) return false;
    const was = b.get(n.name);
    return was === undefined || compare(nodeProgress(n), was) > 0;
  });
  const phaseMoved =
    focus === undefined &&
    (MAINTENANCE_RANK[next.status?.phase ?? 'Pending'] ?? 0) >
      (MAINTENANCE_RANK[base.status?.phase ?? 'Pending'] ?? 0);
  return moved || phaseMoved;
}

/**
 * Seconds from `from` (the fault, or its end) to the first version received after it (and
 * after `notBefore`: a successor's, not a write the dead leader had in flight) that is ahead of
 * the last version received before `baselineAt`; undefined when none came.
 */
export function recoverySeconds(
  versions: readonly Version[],
  baselineAt: number,
  from: number,
  focus?: string,
  notBefore = from,
): number | undefined {
  const base = versions.filter((v) => v.at <= baselineAt).at(-1)?.m;
  const after = Math.max(from, notBefore);
  const next = versions.find((v) => v.at > after && advanced(base, v.m, focus));
  return next === undefined ? undefined : Math.max(0, (next.at - from) / 1000);
}

/**
 * The longest any node went without progress after `from`, in seconds: from `from` (or its
 * first version) to its first move, between its moves, until a final phase or the last version.
 * Steps count as they take (a 2 s Script, a reboot), so a row without fault is the reference.
 * Only versions after `notBefore` move a node (a dead leader's writes in flight do not).
 */
export function longestStallSeconds(
  versions: readonly Version[],
  from: number,
  notBefore = from,
): number {
  const names = new Set(versions.flatMap((v) => (v.m.status?.nodes ?? []).map((n) => n.name)));
  let longest = 0;
  for (const name of names) {
    let since = from;
    let last: [number, number] | undefined;
    for (const v of versions) {
      const n = v.m.status?.nodes?.find((x) => x.name === name);
      if (n === undefined) continue;
      const p = nodeProgress(n);
      const moved = last === undefined || compare(p, last) > 0;
      if (v.at <= Math.max(from, notBefore)) {
        if (moved) last = p;
        continue;
      }
      if (!moved) continue;
      longest = Math.max(longest, v.at - since);
      since = v.at;
      last = p;
      if (p[0] >= 5) break;
    }
    const done = last !== undefined && last[0] >= 5;
    if (!done) longest = Math.max(longest, (versions.at(-1)?.at ?? since) - since);
  }
  return longest / 1000;
}
