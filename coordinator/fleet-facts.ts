// Pure: what the leader's /metrics says about the fleet (from its Node cache) and about the
// maintenances it runs (from their status), computed at scrape time. Cardinality is bounded on
// purpose: counts by tier × GPU SKU and by a fixed set of values, never a series per node,
// except the few stuck nodes (capped) an on-call engineer has to find.
import type { V1Node } from '@kubernetes/client-node';
import { skuOf } from '../agent/labels/sku.js';
import type { NodeMaintenanceStatus } from '../shared/api/index.js';
import { GPU_HEALTH_LABEL, MANAGED_LABELS_ANNOTATION, NOMA_LABELS } from '../shared/labels.js';
import type { StuckNode } from './controller/node-states.js';

/** At most this many (tier, GPU SKU) series; further pairs are counted as tier="other". */
export const MAX_TIER_SKU_SERIES = 64;
/** At most this many maintenances get a noma_maintenance_phase series (the oldest keys first). */
export const MAX_MAINTENANCE_SERIES = 100;
/** At most this many stuck nodes get a noma_node_stuck_seconds series (the longest first). */
export const MAX_STUCK_SERIES = 20;

/** noma.dev/gpu.health as a label value: the agent's two, any other value, or none at all. */
export const GPU_HEALTH_VALUES = ['healthy', 'degraded', 'unknown', 'none'] as const;
export type GpuHealthValue = (typeof GPU_HEALTH_VALUES)[number];

/** The SKU of a node without noma.dev/gpu.product (no GPU, or its agent has not labeled it). */
export const NO_GPU_SKU = 'none';
/** The tier and SKU of the pairs past MAX_TIER_SKU_SERIES. */
export const OTHER = 'other';

export interface FleetOptions {
  /** The tier label key of the agents' rules (rules.tier.label); '' when tiers are off. */
  readonly tierLabel: string;
  /** The agent link's view; undefined when this coordinator serves no link. */
  readonly isConnected?: (node: string) => boolean;
}

export interface TierSkuCount {
  readonly tier: string;
  readonly gpuSku: string;
  readonly nodes: number;
}

export interface FleetFacts {
  readonly byTierSku: readonly TierSkuCount[];
  /** Nodes without the tier label (or with it empty); undefined when tiers are off. */
  readonly missingTier: number | undefined;
  readonly gpuHealth: Readonly<Record<GpuHealthValue, number>>;
  /**
   * Ready nodes an agent has labeled (noma.dev/managed-labels) whose agent is not connected to
   * this coordinator's link now; undefined without a link.
   */
  readonly agentsDisconnected: number | undefined;
}

const isReady = (node: V1Node): boolean =>
  node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;

/** "NVIDIA-H100-80GB-HBM3" (noma.dev/gpu.product) → h100; "mixed" stays; no label → none. */
export function gpuSkuOf(labels: Readonly<Record<string, string>>): string {
  const product = labels[NOMA_LABELS.gpuProduct];
  return product === undefined || product === '' ? NO_GPU_SKU : skuOf(product);
}

export function gpuHealthOf(labels: Readonly<Record<string, string>>): GpuHealthValue {
  const h = labels[GPU_HEALTH_LABEL];
  if (h === undefined) return 'none';
  return h === 'healthy' || h === 'degraded' ? h : 'unknown';
}

/** Counts by (tier, SKU), sorted, the pairs past the cap folded into one other/other. */
function tierSkuCounts(pairs: readonly (readonly [string, string])[]): TierSkuCount[] {
  const counts = new Map<string, TierSkuCount>();
  for (const [tier, gpuSku] of pairs) {
    const key = `${tier}\u0000${gpuSku}`;
    const had = counts.get(key);
    counts.set(key, { tier, gpuSku, nodes: (had?.nodes ?? 0) + 1 });
  }
  const sorted = [...counts.values()].sort(
    (a, b) => b.nodes - a.nodes || a.tier.localeCompare(b.tier) || a.gpuSku.localeCompare(b.gpuSku),
  );
  if (sorted.length <= MAX_TIER_SKU_SERIES) return sorted;
  const kept = sorted.slice(0, MAX_TIER_SKU_SERIES - 1);
  const rest = sorted.slice(MAX_TIER_SKU_SERIES - 1).reduce((n, c) => n + c.nodes, 0);
  return [...kept, { tier: OTHER, gpuSku: OTHER, nodes: rest }];
}

export function fleetFacts(nodes: readonly V1Node[], opts: FleetOptions): FleetFacts {
  const { tierLabel, isConnected } = opts;
  const gpuHealth: Record<GpuHealthValue, number> = {
    healthy: 0,
    degraded: 0,
    unknown: 0,
    none: 0,
  };
  const pairs: (readonly [string, string])[] = [];
  let missingTier = 0;
  let disconnected = 0;
  for (const node of nodes) {
    const labels = node.metadata?.labels ?? {};
    // An empty value is what Prometheus calls no label at all: nodes without a tier.
    const tier = tierLabel === '' ? '' : (labels[tierLabel] ?? '');
    if (tier === '') missingTier++;
    pairs.push([tier, gpuSkuOf(labels)]);
    gpuHealth[gpuHealthOf(labels)]++;
    const labeled = node.metadata?.annotations?.[MANAGED_LABELS_ANNOTATION] !== undefined;
    const name = node.metadata?.name ?? '';
    if (isConnected !== undefined && labeled && isReady(node) && !isConnected(name)) {
      disconnected++;
    }
  }
  return {
    byTierSku: tierSkuCounts(pairs),
    missingTier: tierLabel === '' ? undefined : missingTier,
    gpuHealth,
    agentsDisconnected: isConnected === undefined ? undefined : disconnected,
  };
}

/** What /metrics needs of one maintenance run. */
export interface RunView {
  /** namespace/name */
  readonly key: string;
  readonly status: NodeMaintenanceStatus;
  readonly stuck: readonly StuckNode[];
}

export interface MaintenanceFacts {
  /** Maintenances not Completed or Failed, by key (capped). */
  readonly active: readonly { readonly maintenance: string; readonly phase: string }[];
  /** Per maintenance with a blocked drain now: how long its longest such node has drained. */
  readonly drainBlocked: readonly { readonly maintenance: string; readonly seconds: number }[];
  /** Stuck nodes, the longest first (capped). */
  readonly stuck: readonly {
    readonly maintenance: string;
    readonly node: string;
    readonly phase: string;
    readonly seconds: number;
  }[];
}

const TERMINAL = new Set(['Completed', 'Failed']);

/**
 * A node whose drain is blocked now (phase Draining, drain.blockedBy set): seconds since it
 * entered Draining. Status keeps no time of the block itself; the drain began then, and the
 * block is what keeps it from finishing.
 */
function drainBlockedSeconds(node: NodeStatusLike, now: number): number | undefined {
  if (node.phase !== 'Draining' || node.drain?.blockedBy === undefined) return undefined;
  const since = Date.parse(node.lastTransitionTime ?? node.phaseTimes?.cordoned ?? '');
  return Number.isNaN(since) ? undefined : Math.max(0, (now - since) / 1000);
}
type NodeStatusLike = NonNullable<NodeMaintenanceStatus['nodes']>[number];

export function maintenanceFacts(runs: readonly RunView[], now: number): MaintenanceFacts {
  const sorted = [...runs].sort((a, b) => a.key.localeCompare(b.key));
  const active = sorted
    .map((r) => ({ maintenance: r.key, phase: r.status.phase ?? 'Pending' }))
    .filter((r) => !TERMINAL.has(r.phase))
    .slice(0, MAX_MAINTENANCE_SERIES);
  const drainBlocked: { maintenance: string; seconds: number }[] = [];
  for (const r of sorted) {
    let longest: number | undefined;
    for (const n of r.status.nodes ?? []) {
      const s = drainBlockedSeconds(n, now);
      if (s !== undefined && (longest === undefined || s > longest)) longest = s;
    }
    if (longest !== undefined) drainBlocked.push({ maintenance: r.key, seconds: longest });
    if (drainBlocked.length >= MAX_MAINTENANCE_SERIES) break;
  }
  const stuck = sorted
    .flatMap((r) =>
      r.stuck.map((s) => ({
        maintenance: r.key,
        node: s.name,
        phase: s.phase,
        seconds: Math.max(0, (now - Date.parse(s.since)) / 1000),
      })),
    )
    .filter((s) => !Number.isNaN(s.seconds))
    .sort((a, b) => b.seconds - a.seconds || a.node.localeCompare(b.node))
    .slice(0, MAX_STUCK_SERIES);
  return { active, drainBlocked, stuck };
}
