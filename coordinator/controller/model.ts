// The per-node state machine of a NodeMaintenance, as pure functions over status. The I/O
// (controller/run.ts) asks `nextStep` what to do, does it, and records the transition with the
// helpers below before it takes the next side effect. See docs/state-machine.md.
import type {
  Action,
  Condition,
  MaintenancePhase,
  NodeMaintenanceSpec,
  NodeMaintenanceStatus,
  NodePhase,
  NodeStatus,
} from '../../shared/api/index.js';
import { stampPhaseTimes } from './node-states.js';

export const TERMINAL_NODE_PHASES: ReadonlySet<NodePhase> = new Set([
  'Succeeded',
  'Failed',
  'Restored',
]);

export const isTerminal = (n: NodeStatus): boolean => TERMINAL_NODE_PHASES.has(n.phase);

/**
 * A node counts against maxUnavailable and the global cap from the moment its initial state is
 * recorded (the step before cordon) until it is finished.
 */
export const isActive = (n: NodeStatus): boolean => n.initialState !== undefined && !isTerminal(n);

/**
 * A node noma holds out of service: in maintenance, or Failed and still cordoned (until it is
 * restored or retried). Held nodes count against maxUnavailable and the coordinator's cap.
 */
export const isHeld = (n: NodeStatus): boolean => isActive(n) || n.phase === 'Failed';

/** Admitted, not finished and not yet past the admission of a new node (nothing touched). */
export const notStarted = (n: NodeStatus): boolean =>
  n.phase === 'Pending' && n.initialState === undefined;

export type Step =
  /** Pending, nothing touched yet: wait for capacity, then record the initial state. */
  | { kind: 'admit' }
  /** Initial state recorded: cordon, taint, label. */
  | { kind: 'cordon' }
  /** Cordoned or interrupted while draining: drain. */
  | { kind: 'drain' }
  /** Drained or between actions: run spec.actions[index]. */
  | { kind: 'action'; index: number; action: Action }
  /** Past the last action. */
  | { kind: 'finish' }
  | { kind: 'terminal' };

export function nextStep(node: NodeStatus, spec: NodeMaintenanceSpec): Step {
  switch (node.phase) {
    case 'Pending':
      return node.initialState === undefined ? { kind: 'admit' } : { kind: 'cordon' };
    case 'Cordoned':
    case 'Draining':
      return { kind: 'drain' };
    case 'Drained':
    case 'InAction': {
      // A retried node carries the index of its failed step through cordon and drain.
      const index = node.currentActionIndex ?? 0;
      const action = spec.actions[index];
      return action === undefined ? { kind: 'finish' } : { kind: 'action', index, action };
    }
    case 'Succeeded':
    case 'Failed':
    case 'Restored':
      return { kind: 'terminal' };
  }
}

/**
 * Returns `node` moved to `phase` with `fields` set, the state's time in phaseTimes; times are
 * ISO strings.
 */
export function transition(
  node: NodeStatus,
  phase: NodePhase,
  now: Date,
  fields: Partial<NodeStatus> = {},
): NodeStatus {
  const at = now.toISOString();
  const next: NodeStatus = {
    ...node,
    ...fields,
    phase,
    lastTransitionTime: node.phase === phase ? (node.lastTransitionTime ?? at) : at,
  };
  if (TERMINAL_NODE_PHASES.has(phase) && next.completedAt === undefined) next.completedAt = at;
  return stampPhaseTimes(node, next, now);
}

/** A count, or a percentage of `selected` rounded down (at least 1). */
function countOrPercent(v: number | string, selected: number): number {
  if (typeof v === 'number') return v;
  const pct = Number(v.slice(0, -1));
  return Math.max(1, Math.floor((selected * pct) / 100));
}

/** options.maxUnavailable as a node count: a count, or a percentage rounded down (at least 1). */
export function maxUnavailable(spec: NodeMaintenanceSpec, selected: number): number {
  const v = spec.options?.maxUnavailable;
  return v === undefined ? Math.max(selected, 1) : countOrPercent(v, selected);
}

/** options.maxFailedNodes as a node count (default 1; 0 halts at the first failure too). */
export function maxFailedNodes(spec: NodeMaintenanceSpec, selected: number): number {
  const v = spec.options?.maxFailedNodes;
  return Math.max(1, v === undefined ? 1 : countOrPercent(v, selected));
}

export const failedCount = (nodes: readonly NodeStatus[]): number =>
  nodes.reduce((n, x) => n + (x.phase === 'Failed' ? 1 : 0), 0);

/** The failure budget is spent: no node starts, no node begins its next step. */
export function isHalted(nodes: readonly NodeStatus[], spec: NodeMaintenanceSpec): boolean {
  const failed = failedCount(nodes);
  return failed > 0 && failed >= maxFailedNodes(spec, nodes.length);
}

/** Why nodes must stop between steps now (pause, or the failure budget), if they must. */
export function holdReason(
  nodes: readonly NodeStatus[],
  spec: NodeMaintenanceSpec,
): string | undefined {
  if (isHalted(nodes, spec)) {
    return (
      `halted: ${failedCount(nodes)} node(s) failed, maxFailedNodes is ` +
      `${maxFailedNodes(spec, nodes.length)}; restore or retry failed nodes, or raise it`
    );
  }
  if (spec.paused === true) return 'paused: spec.paused is true';
  return undefined;
}

/**
 * The nodes of one maintenance that are unavailable: those it holds, and those it has not
 * started that are unavailable anyway (`unavailable`: NotReady, or cordoned by anyone).
 * Nodes it finished are its own business (a maintenance without Complete leaves them cordoned).
 */
export function unavailableNodes(
  nodes: readonly NodeStatus[],
  unavailable: (name: string) => boolean,
): Set<string> {
  const out = new Set<string>();
  for (const n of nodes) {
    if (isHeld(n) || (notStarted(n) && unavailable(n.name))) out.add(n.name);
  }
  return out;
}

export interface AdmissionFacts {
  /** Unavailable nodes of this maintenance, the candidate not counted. */
  readonly unavailableInThis: number;
  readonly limitInThis: number;
  /** Unavailable nodes of every maintenance the coordinator runs, the candidate not counted. */
  readonly unavailableGlobally: number;
  readonly globalLimit: number;
  /** The other maintenance that holds this node, if any. */
  readonly heldElsewhere: string | undefined;
  /** Pause or failure budget (holdReason), if any. */
  readonly hold: string | undefined;
}

export type Admission = { admit: true } | { admit: false; reason: string };

/** Whether a node may start: it then counts once, whether it was unavailable already or not. */
export function admission(f: AdmissionFacts): Admission {
  if (f.hold !== undefined) return { admit: false, reason: f.hold };
  if (f.heldElsewhere !== undefined) {
    return { admit: false, reason: `node is in maintenance ${f.heldElsewhere}` };
  }
  if (f.limitInThis === 0 || f.unavailableInThis + 1 > f.limitInThis) {
    return {
      admit: false,
      reason: `maxUnavailable (${f.limitInThis}) reached: ${f.unavailableInThis} selected node(s) unavailable`,
    };
  }
  if (f.unavailableGlobally + 1 > f.globalLimit) {
    return {
      admit: false,
      reason: `coordinator-wide cap of ${f.globalLimit} unavailable nodes reached`,
    };
  }
  return { admit: true };
}

/** The CR's phase, from its nodes and spec. */
export function maintenancePhase(
  nodes: readonly NodeStatus[],
  spec: NodeMaintenanceSpec,
): MaintenancePhase {
  if (nodes.length === 0) return 'Pending';
  if (nodes.every(isTerminal)) {
    return nodes.some((n) => n.phase === 'Failed') ? 'Failed' : 'Completed';
  }
  if (isHalted(nodes, spec)) return 'Halted';
  if (spec.paused === true) return 'Paused';
  return nodes.some((n) => !notStarted(n)) ? 'Running' : 'Pending';
}

const CONDITION_MESSAGE_MAX = 4096;
const NODE_DETAIL_MAX = 256;

/** Pure: "12 nodes failed; first 3: a: …; b: …; c: …", bounded whatever the node count. */
export function failedSummary(failed: readonly NodeStatus[], first = 3): string {
  const cut = (t: string) => (t.length > NODE_DETAIL_MAX ? `${t.slice(0, NODE_DETAIL_MAX)}…` : t);
  const detail = failed
    .slice(0, first)
    .map((n) => `${n.name}: ${cut(n.message ?? 'failed')}`)
    .join('; ');
  const head =
    failed.length > first
      ? `${failed.length} nodes failed; first ${first}: `
      : `${failed.length} node(s) failed: `;
  return (head + detail).slice(0, CONDITION_MESSAGE_MAX);
}

function readyCondition(
  phase: MaintenancePhase,
  nodes: readonly NodeStatus[],
  spec: NodeMaintenanceSpec,
  done: number,
): Omit<Condition, 'lastTransitionTime'> {
  const status = phase === 'Completed' ? 'True' : 'False';
  if (phase === 'Halted') {
    const failed = nodes.filter((n) => n.phase === 'Failed');
    return {
      type: 'Ready',
      status,
      reason: 'FailureBudgetExceeded',
      message:
        `maxFailedNodes is ${maxFailedNodes(spec, nodes.length)}; ${failedSummary(failed)}. ` +
        'No node starts until failed nodes are restored or retried or the budget is raised',
    };
  }
  if (phase === 'Paused') {
    return {
      type: 'Ready',
      status,
      reason: 'Paused',
      message: `paused (spec.paused); ${done}/${nodes.length} nodes finished`,
    };
  }
  return {
    type: 'Ready',
    status,
    reason: phase,
    message: `${done}/${nodes.length} nodes finished`,
  };
}

export function setCondition(
  conditions: readonly Condition[] | undefined,
  c: Omit<Condition, 'lastTransitionTime'>,
  now: Date,
): Condition[] {
  const list = [...(conditions ?? [])];
  const i = list.findIndex((x) => x.type === c.type);
  const prev = i >= 0 ? list[i] : undefined;
  const lastTransitionTime =
    prev !== undefined && prev.status === c.status && prev.lastTransitionTime !== undefined
      ? prev.lastTransitionTime
      : now.toISOString();
  const next: Condition = { ...c, lastTransitionTime };
  if (i >= 0) list[i] = next;
  else list.push(next);
  return list;
}

/**
 * Everything in status that follows from status.nodes: phase, progress, the seed's
 * currentAction* and job fields, completedAt and the Ready/Progressing/Degraded conditions.
 */
export function summarize(
  status: NodeMaintenanceStatus,
  spec: NodeMaintenanceSpec,
  now: Date,
  generation: number | undefined,
): NodeMaintenanceStatus {
  const nodes = status.nodes ?? [];
  const phase =
    status.phase === 'Failed' && nodes.length === 0 ? 'Failed' : maintenancePhase(nodes, spec);
  const done = nodes.filter(isTerminal).length;
  const inAction = nodes.filter((n) => n.phase === 'InAction');
  const furthest = inAction.reduce<number | undefined>(
    (max, n) => Math.max(max ?? 0, n.currentActionIndex ?? 0),
    undefined,
  );
  const failed = nodes.filter((n) => n.phase === 'Failed');
  const obs = generation === undefined ? {} : { observedGeneration: generation };
  let conditions = status.conditions;
  if (nodes.length > 0) {
    conditions = setCondition(
      conditions,
      { ...readyCondition(phase, nodes, spec, done), ...obs },
      now,
    );
    conditions = setCondition(
      conditions,
      {
        type: 'Progressing',
        status: phase === 'Running' || phase === 'Pending' ? 'True' : 'False',
        reason: phase,
        message: `${nodes.length - done} nodes to go`,
        ...obs,
      },
      now,
    );
    conditions = setCondition(
      conditions,
      {
        type: 'Degraded',
        status: failed.length > 0 ? 'True' : 'False',
        reason: failed.length > 0 ? 'NodeFailed' : 'AsExpected',
        message: failed.length > 0 ? failedSummary(failed) : 'no node failed',
        ...obs,
      },
      now,
    );
  }
  const next: NodeMaintenanceStatus = {
    ...status,
    phase,
    progress: `${done}/${nodes.length}`,
    ...(conditions === undefined ? {} : { conditions }),
    ...obs,
  };
  if (furthest !== undefined) {
    next.currentActionIndex = furthest;
    const type = spec.actions[furthest]?.type;
    if (type !== undefined) next.currentActionType = type;
  } else {
    delete next.currentActionIndex;
    delete next.currentActionType;
  }
  // The seed's job fields, from the pods of the steps in flight: their names, and the earliest
  // time one of them times out.
  const jobs = inAction.flatMap((n) => (n.job === undefined ? [] : [n.job]));
  if (jobs.length > 0) {
    next.pendingJobs = jobs.map((j) => j.pod).sort();
    next.jobTimeoutAt = jobs
      .map((j) => j.timeoutAt)
      .reduce((a, b) => (Date.parse(b) < Date.parse(a) ? b : a));
  } else {
    delete next.pendingJobs;
    delete next.jobTimeoutAt;
  }
  if ((phase === 'Completed' || phase === 'Failed') && next.completedAt === undefined) {
    next.completedAt = now.toISOString();
  }
  return next;
}
