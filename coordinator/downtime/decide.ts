// Pure: what the leader does about a node that is down (unplanned downtime). Given the facts of
// every node in scope, the time and the configuration, each node gets one decision: taint it,
// untaint it, forget a record whose taint someone else removed, hold, or nothing. The I/O
// (coordinator/downtime/watch.ts) only reads facts and carries decisions out, so every rule is
// here and table-tested.
import type { V1Node } from '@kubernetes/client-node';
import { CLAIM_ANNOTATION, DOWNTIME_ANNOTATION } from '../../shared/maintenance-keys.js';
import { sameTaint, type TaintSpec } from '../nodes/taints.js';

export interface DowntimeConfig {
  /** Not Ready longer than this: the taint. */
  readonly afterMs: number;
  /** Ready again this long (and the agent back, if it had one): the taint goes. */
  readonly settleMs: number;
  /** More nodes than this not Ready at once: a partition, taint none. */
  readonly maxNodes: { readonly count: number } | { readonly percent: number };
  readonly taint: TaintSpec;
}

/** What noma did to a node, kept on the node itself (DOWNTIME_ANNOTATION). */
export interface DowntimeRecord {
  readonly taint: TaintSpec;
  readonly downSince: string;
  readonly taintedAt: string;
  /** An agent was connected for the node before it went down. */
  readonly agent: boolean;
}

export interface NodeFacts {
  readonly name: string;
  readonly ready: boolean;
  /** Epoch ms since when Ready has not been True (set when not ready). */
  readonly notReadySince: number | undefined;
  /** Epoch ms since when Ready has been True (set when ready). */
  readonly readySince: number | undefined;
  /** The node is in a NodeMaintenance (CLAIM_ANNOTATION): left to that maintenance. */
  readonly claimed: boolean;
  readonly record: DowntimeRecord | undefined;
  /** The node carries the record's taint, or without a record the configured one. */
  readonly tainted: boolean;
  readonly agentConnected: boolean;
  /** An agent was seen connected for the node (before it went down). */
  readonly hadAgent: boolean;
}

export type HoldReason =
  'claimed' | 'down' | 'settling' | 'agent' | 'partition' | 'foreign-taint' | 'taint-removed';

export type NodeDecision =
  | { readonly action: 'none' }
  | { readonly action: 'taint'; readonly downForMs: number }
  | { readonly action: 'untaint'; readonly readyForMs: number }
  | { readonly action: 'forget' }
  | { readonly action: 'hold'; readonly reason: HoldReason };

export interface FleetState {
  readonly total: number;
  /** Not Ready and not in a maintenance (a maintenance's reboots are expected downtime). */
  readonly notReady: number;
  readonly cap: number;
  readonly partition: boolean;
}

const NONE: NodeDecision = { action: 'none' };
const hold = (reason: HoldReason): NodeDecision => ({ action: 'hold', reason });

/** The most nodes that may be down at once before noma assumes a partition: at least one. */
export function capOf(max: DowntimeConfig['maxNodes'], total: number): number {
  const n = 'count' in max ? max.count : Math.floor((total * max.percent) / 100);
  return Math.max(1, n);
}

export function fleetState(facts: readonly NodeFacts[], cfg: DowntimeConfig): FleetState {
  const notReady = facts.filter((f) => !f.ready && !f.claimed).length;
  const cap = capOf(cfg.maxNodes, facts.length);
  return { total: facts.length, notReady, cap, partition: notReady > cap };
}

/** One node. `partition` stops new taints only: untainting a node that is back stays safe. */
export function decideNode(
  f: NodeFacts,
  now: number,
  cfg: DowntimeConfig,
  partition: boolean,
): NodeDecision {
  if (f.claimed) return f.record !== undefined || !f.ready ? hold('claimed') : NONE;
  if (f.record !== undefined) {
    // Someone removed our taint by hand: respected while the node is down (no re-taint, the
    // record stays so that this downtime is not tainted again), forgotten once it is back.
    if (!f.tainted) return f.ready ? { action: 'forget' } : hold('taint-removed');
    if (!f.ready) return hold('down');
    const readyForMs = now - (f.readySince ?? now);
    if (readyForMs < cfg.settleMs) return hold('settling');
    if (f.record.agent && !f.agentConnected) return hold('agent');
    return { action: 'untaint', readyForMs };
  }
  if (f.ready) return NONE;
  const downForMs = now - (f.notReadySince ?? now);
  if (downForMs <= cfg.afterMs) return NONE;
  // The same taint put there by someone else (the runbook by hand): not ours to manage.
  if (f.tainted) return hold('foreign-taint');
  if (partition) return hold('partition');
  return { action: 'taint', downForMs };
}

export function decideFleet(
  facts: readonly NodeFacts[],
  now: number,
  cfg: DowntimeConfig,
): { fleet: FleetState; decisions: { name: string; decision: NodeDecision }[] } {
  const fleet = fleetState(facts, cfg);
  return {
    fleet,
    decisions: facts.map((f) => ({
      name: f.name,
      decision: decideNode(f, now, cfg, fleet.partition),
    })),
  };
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** The node's record; one that does not parse is no record of noma's. */
export function recordOf(node: V1Node): DowntimeRecord | undefined {
  const text = node.metadata?.annotations?.[DOWNTIME_ANNOTATION];
  if (text === undefined) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isRecord(v) || !isRecord(v['taint'])) return undefined;
  const key = str(v['taint']['key']);
  const effect = str(v['taint']['effect']);
  const value = str(v['taint']['value']);
  if (key === undefined || effect === undefined) return undefined;
  return {
    taint: { key, effect, ...(value === undefined ? {} : { value }) },
    downSince: str(v['downSince']) ?? '',
    taintedAt: str(v['taintedAt']) ?? '',
    agent: v['agent'] === true,
  };
}

export const formatRecord = (r: DowntimeRecord): string =>
  JSON.stringify({
    taint: {
      key: r.taint.key,
      ...(r.taint.value === undefined ? {} : { value: r.taint.value }),
      effect: r.taint.effect,
    },
    downSince: r.downSince,
    taintedAt: r.taintedAt,
    agent: r.agent,
  });

const ms = (t: Date | string | undefined): number | undefined => {
  if (t === undefined) return undefined;
  const v = new Date(t).getTime();
  return Number.isNaN(v) ? undefined : v;
};

export interface Observed {
  /** The agent of the node is connected now. */
  readonly agentConnected: boolean;
  readonly hadAgent: boolean;
  /** When this process first saw the node in its current readiness (a fallback, see below). */
  readonly firstSeen: number;
}

/**
 * The facts of one node. A node's Ready condition changes from False to Unknown when its kubelet
 * stops reporting, which resets lastTransitionTime though the node never came back: the earlier
 * of that time and what this process saw (`firstSeen`) is when it went down.
 */
export function nodeFacts(node: V1Node, seen: Observed, cfg: DowntimeConfig): NodeFacts {
  const cond = node.status?.conditions?.find((c) => c.type === 'Ready');
  const ready = cond?.status === 'True';
  const since = ms(cond?.lastTransitionTime) ?? ms(node.metadata?.creationTimestamp);
  const record = recordOf(node);
  const taint = record?.taint ?? cfg.taint;
  return {
    name: node.metadata?.name ?? '',
    ready,
    notReadySince: ready ? undefined : Math.min(since ?? seen.firstSeen, seen.firstSeen),
    readySince: ready ? (since ?? seen.firstSeen) : undefined,
    claimed: node.metadata?.annotations?.[CLAIM_ANNOTATION] !== undefined,
    record,
    tainted: (node.spec?.taints ?? []).some((t) => sameTaint(t, taint)),
    agentConnected: seen.agentConnected,
    hadAgent: seen.hadAgent,
  };
}
