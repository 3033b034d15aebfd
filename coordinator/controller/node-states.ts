// The states other controllers watch (PIKA's NotifyMaintenance states, seed 003): per-node
// state times, SLAExpired and Stuck, as pure functions over status. run.ts and drain-steps.ts do
// the I/O (timers, Events, the webhook). See docs/state-machine.md, "States for schedulers".
import type {
  Condition,
  NodeMaintenanceSpec,
  NodePhase,
  NodePhaseTimes,
  NodeStatus,
} from '../../shared/api/index.js';

/** Finished nodes (model.ts TERMINAL_NODE_PHASES; not imported: model.ts imports this file). */
const FINISHED: ReadonlySet<NodePhase> = new Set(['Succeeded', 'Failed', 'Restored']);

export type PhaseTimeKey = keyof NodePhaseTimes;

/** An ISO time to the second: 20 characters instead of 24, times 8 keys, times 2000 nodes. */
export const isoSeconds = (d: Date): string => `${d.toISOString().slice(0, 19)}Z`;

/** Which phaseTimes key entering `phase` sets (none for Pending and Draining). */
export function phaseTimeKey(phase: NodePhase): PhaseTimeKey | undefined {
  switch (phase) {
    case 'Cordoned':
      return 'cordoned';
    case 'Drained':
      return 'drained';
    case 'Succeeded':
      return 'completed';
    case 'Failed':
      return 'failed';
    case 'Restored':
      return 'restored';
    default:
      return undefined;
  }
}

/** `node` with phaseTimes[key] = `at`. */
export function withPhaseTime(node: NodeStatus, key: PhaseTimeKey, at: Date): NodeStatus {
  return { ...node, phaseTimes: { ...node.phaseTimes, [key]: isoSeconds(at) } };
}

/**
 * Pure: the phaseTimes of a move from `prev` to `next` (transition()): the key of a new phase,
 * and actionStarted when a new step was dispatched (a new action ID), which may happen within
 * InAction.
 */
export function stampPhaseTimes(prev: NodeStatus, next: NodeStatus, at: Date): NodeStatus {
  let out = next;
  const key = prev.phase === next.phase ? undefined : phaseTimeKey(next.phase);
  if (key !== undefined) out = withPhaseTime(out, key, at);
  if (next.actionID !== undefined && next.actionID !== prev.actionID) {
    out = withPhaseTime(out, 'actionStarted', at);
  }
  return out;
}

/** From this many nodes on, finished nodes keep only the times of their end (see below). */
export const PHASE_TIMES_HISTORY_MAX_NODES = 500;

/**
 * Pure: a node's phaseTimes as kept in a status of many nodes. At 2000 nodes every key costs
 * ~70 KiB of a status that etcd caps at 1.5 MiB, so a finished node then keeps only how it
 * ended (completed, failed or restored) and slaExpired; nodes in flight keep every key, and
 * the per-phase histogram in /metrics has the durations.
 */
export function compactPhaseTimes(node: NodeStatus, many: boolean): NodeStatus {
  const t = node.phaseTimes;
  if (!many || t === undefined || !FINISHED.has(node.phase)) return node;
  const kept: NodePhaseTimes = {};
  for (const k of ['completed', 'failed', 'restored', 'slaExpired'] as const) {
    const v = t[k];
    if (v !== undefined) kept[k] = v;
  }
  return { ...node, phaseTimes: kept };
}

const MAX_NAMED_NODES = 10;
const REASON_MAX = 256;

/** Pure: "3 node(s): a, b, c" or "12 nodes, first 10: …", bounded whatever the count. */
export function namedNodes(names: readonly string[]): string {
  const shown = names.slice(0, MAX_NAMED_NODES).join(', ');
  return names.length > MAX_NAMED_NODES
    ? `${names.length} nodes, first ${MAX_NAMED_NODES}: ${shown}`
    : `${names.length} node(s): ${shown}`;
}

/** Pure: the SLAExpired condition, from the nodes whose drain passed drainTimeout. */
export function slaCondition(
  nodes: readonly NodeStatus[],
  drainTimeout: string,
): Omit<Condition, 'lastTransitionTime'> {
  const expired = nodes.filter((n) => n.phaseTimes?.slaExpired !== undefined).map((n) => n.name);
  return expired.length === 0
    ? { type: 'SLAExpired', status: 'False', reason: 'WithinDrainTimeout', message: 'none' }
    : {
        type: 'SLAExpired',
        status: 'True',
        reason: 'DrainTimeoutPassed',
        message:
          `drainTimeout (${drainTimeout}) passed while draining ${namedNodes(expired)}; ` +
          'pods still there may be removed at any time (forceDrain) or the node fails',
      };
}

export interface StuckNode {
  readonly name: string;
  readonly phase: NodePhase;
  /** Since when the node has not moved (ISO). */
  readonly since: string;
  readonly reason: string;
}

/**
 * When the node last moved: a new phase, or a new step within InAction (actionStarted).
 * Undefined for a node not started.
 */
export function lastMove(node: NodeStatus): number | undefined {
  const times = [node.lastTransitionTime, node.phaseTimes?.actionStarted, node.startedAt]
    .filter((t): t is string => t !== undefined)
    .map((t) => Date.parse(t));
  return times.length === 0 ? undefined : Math.max(...times);
}

/**
 * Pure: why the node is not progressing while the spec asked it to wait, if it is: a node not
 * started (waiting for capacity, maxUnavailable, a claim elsewhere), a node held between steps
 * (pause, failure budget: its message says "waiting: …"), and an InteractiveShell step (it
 * waits for a human's release by design). Those are never Stuck.
 */
export function askedToWait(node: NodeStatus, spec: NodeMaintenanceSpec): string | undefined {
  if (node.initialState === undefined) return 'not started';
  if (node.message?.startsWith('waiting: ') === true) return node.message;
  if (spec.paused === true) return 'paused';
  const action =
    node.currentActionIndex === undefined ? undefined : spec.actions[node.currentActionIndex];
  if (node.phase === 'InAction' && action?.type === 'InteractiveShell') {
    return 'InteractiveShell waits for its release';
  }
  return undefined;
}

/** Pure: what the node is stuck in, for the condition and the Event. */
function stuckDetail(node: NodeStatus, spec: NodeMaintenanceSpec, forMs: number): string {
  const mins = Math.floor(forMs / 60_000);
  const age = mins >= 1 ? `${mins}m` : `${Math.floor(forMs / 1000)}s`;
  let what: string = node.phase;
  if (node.phase === 'InAction' && node.currentActionIndex !== undefined) {
    const a = spec.actions[node.currentActionIndex];
    what = `step ${node.currentActionIndex} (${a?.name ?? a?.type ?? '?'})`;
  }
  const b = node.drain?.blockedBy;
  const blocked =
    node.phase === 'Draining' && b !== undefined
      ? `, drain blocked by ${b.kind} ${b.namespace ?? ''}/${b.name}`
      : '';
  const text = `${what} for ${age} without progress${blocked}`;
  return text.length > REASON_MAX ? `${text.slice(0, REASON_MAX)}…` : text;
}

/**
 * Pure: the nodes that have not moved for longer than `stuckAfterMs` (0 = never), waits the
 * spec asked for aside (askedToWait), finished nodes aside. `waitEnded` (ms), where known, is
 * when a node's last asked-for wait ended: the time it waited does not count.
 */
export function findStuck(
  nodes: readonly NodeStatus[],
  spec: NodeMaintenanceSpec,
  now: Date,
  stuckAfterMs: number,
  waitEnded: (name: string) => number | undefined = () => undefined,
): StuckNode[] {
  if (stuckAfterMs <= 0) return [];
  const out: StuckNode[] = [];
  for (const n of nodes) {
    if (FINISHED.has(n.phase) || askedToWait(n, spec) !== undefined) continue;
    const moved = lastMove(n);
    const ended = waitEnded(n.name);
    const since = moved === undefined || ended === undefined ? moved : Math.max(moved, ended);
    if (since === undefined) continue;
    const forMs = now.getTime() - since;
    if (forMs <= stuckAfterMs) continue;
    out.push({
      name: n.name,
      phase: n.phase,
      since: new Date(since).toISOString(),
      reason: stuckDetail(n, spec, forMs),
    });
  }
  return out;
}

/** Pure: the Stuck condition of the maintenance (the first 3 nodes with their reasons). */
export function stuckCondition(stuck: readonly StuckNode[]): Omit<Condition, 'lastTransitionTime'> {
  if (stuck.length === 0) {
    return { type: 'Stuck', status: 'False', reason: 'Progressing', message: 'no node is stuck' };
  }
  const first = stuck
    .slice(0, 3)
    .map((s) => `${s.name}: ${s.reason}`)
    .join('; ');
  const more = stuck.length > 3 ? `; and ${stuck.length - 3} more` : '';
  return {
    type: 'Stuck',
    status: 'True',
    reason: 'NodesStuck',
    message: `${stuck.length} node(s) stuck: ${first}${more}`,
  };
}
