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
      const index = node.phase === 'Drained' ? 0 : (node.currentActionIndex ?? 0);
      const action = spec.actions[index];
      return action === undefined ? { kind: 'finish' } : { kind: 'action', index, action };
    }
    case 'Succeeded':
    case 'Failed':
    case 'Restored':
      return { kind: 'terminal' };
  }
}

/** Returns `node` moved to `phase` with `fields` set; times are ISO strings. */
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
  return next;
}

/** options.maxUnavailable as a node count: a count, or a percentage rounded down (at least 1). */
export function maxUnavailable(spec: NodeMaintenanceSpec, selected: number): number {
  const v = spec.options?.maxUnavailable;
  if (v === undefined) return Math.max(selected, 1);
  if (typeof v === 'number') return v;
  const pct = Number(v.slice(0, -1));
  return Math.max(1, Math.floor((selected * pct) / 100));
}

export interface AdmissionFacts {
  /** Active nodes of this maintenance. */
  readonly activeInThis: number;
  readonly limitInThis: number;
  /** Active nodes of every maintenance the coordinator runs. */
  readonly activeGlobally: number;
  readonly globalLimit: number;
  /** The other maintenance this node is active in, if any. */
  readonly activeElsewhere: string | undefined;
}

export type Admission = { admit: true } | { admit: false; reason: string };

export function admission(f: AdmissionFacts): Admission {
  if (f.activeElsewhere !== undefined) {
    return { admit: false, reason: `node is in maintenance ${f.activeElsewhere}` };
  }
  if (f.limitInThis === 0 || f.activeInThis >= f.limitInThis) {
    return { admit: false, reason: `maxUnavailable (${f.limitInThis}) reached` };
  }
  if (f.activeGlobally >= f.globalLimit) {
    return {
      admit: false,
      reason: `coordinator-wide cap of ${f.globalLimit} nodes in maintenance reached`,
    };
  }
  return { admit: true };
}

/** The CR's phase, from its nodes. */
export function maintenancePhase(nodes: readonly NodeStatus[]): MaintenancePhase {
  if (nodes.length === 0) return 'Pending';
  if (!nodes.every(isTerminal)) {
    return nodes.some((n) => n.phase !== 'Pending' || n.initialState !== undefined)
      ? 'Running'
      : 'Pending';
  }
  return nodes.some((n) => n.phase === 'Failed') ? 'Failed' : 'Completed';
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
    status.phase === 'Failed' && nodes.length === 0 ? 'Failed' : maintenancePhase(nodes);
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
      {
        type: 'Ready',
        status: phase === 'Completed' ? 'True' : 'False',
        reason: phase,
        message: `${done}/${nodes.length} nodes finished`,
        ...obs,
      },
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
        message:
          failed.length > 0
            ? failed.map((n) => `${n.name}: ${n.message ?? 'failed'}`).join('; ')
            : 'no node failed',
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
