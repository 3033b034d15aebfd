import type { V1Container, V1Node, V1Pod, V1Taint } from '@kubernetes/client-node';
import { claimOf } from '../../coordinator/nodes/claims.js';
import {
  GPU_HEALTH_DETAIL_ANNOTATION,
  GPU_HEALTH_LABEL,
  MANAGED_LABELS_ANNOTATION,
  NOMA_LABELS,
} from '../../shared/labels.js';
import {
  DOWNTIME_ANNOTATION,
  MAINTENANCE_ANNOTATION,
  MAINTENANCE_LABEL,
  MAINTENANCE_TAINT,
} from '../../shared/maintenance-keys.js';

/** Set by `noma init --node-count` on the nodes it picked; the manifest selects on it. */
export const SELECTED_FOR_LABEL = 'noma.dev/selected-for';
/** The agent's default label keys (its rules can rename them; these are the seed schema's). */
const TIER_LABEL = 'hardware.tier';
const COUNT_LABEL = 'gpu.count';
const SKU_LABEL = /^gpu\.([a-z0-9]+)$/;
const CONTROL_PLANE_LABELS = [
  'node-role.kubernetes.io/control-plane',
  'node-role.kubernetes.io/master',
];
/** Extended resources that are GPUs: whole GPUs and MIG slices. */
const GPU_RESOURCE = /^nvidia\.com\/(gpu|mig-.+)$/;

/**
 * What the agent's presence on a node tells us. The agent does not publish a connection state
 * on the Node yet; until it does, `labeled` (it has written its labels) is the most we know.
 */
export type AgentState = 'labeled' | 'unknown';

export interface NodeFacts {
  readonly name: string;
  readonly tier: string | undefined;
  readonly sku: string | undefined;
  readonly gpus: number;
  readonly ready: boolean;
  readonly schedulable: boolean;
  readonly inMaintenance: boolean;
  /** `<namespace>/<name>` (or just the name) of the maintenance the node is in, when known. */
  readonly maintenance: string | undefined;
  readonly controlPlane: boolean;
  readonly agent: AgentState;
  readonly selectedFor: string | undefined;
  /** GPUs requested by the pods bound to the node that have not terminated. */
  readonly gpusRequested: number;
  /** Those pods that request at least one GPU. */
  readonly gpuPods: number;
}

function quantity(q: string | undefined): number {
  if (q === undefined) return 0;
  const n = Number(q);
  return Number.isFinite(n) ? n : 0;
}

function containerGpus(c: V1Container): number {
  // Extended resources cannot be overcommitted: a request equals the limit, and a limit alone
  // implies the request.
  const requests = c.resources?.requests ?? {};
  const limits = c.resources?.limits ?? {};
  let sum = 0;
  for (const key of new Set([...Object.keys(requests), ...Object.keys(limits)])) {
    if (GPU_RESOURCE.test(key)) sum += quantity(requests[key] ?? limits[key]);
  }
  return sum;
}

/** GPUs a pod holds, computed the way the scheduler does: max(largest init, sum of app). */
export function podGpus(pod: V1Pod): number {
  const app = (pod.spec?.containers ?? []).reduce((s, c) => s + containerGpus(c), 0);
  const init = Math.max(0, ...(pod.spec?.initContainers ?? []).map(containerGpus));
  return Math.max(app, init);
}

export function isTerminated(pod: V1Pod): boolean {
  return pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
}

function skuOf(labels: Record<string, string>): string | undefined {
  const skus = Object.entries(labels)
    .filter(([k, v]) => v === 'true' && SKU_LABEL.test(k))
    .map(([k]) => k.replace(SKU_LABEL, '$1'))
    .sort();
  if (skus.length > 0) return skus.join(',');
  return labels[NOMA_LABELS.gpuProduct];
}

function gpuCountOf(node: V1Node, labels: Record<string, string>): number {
  const fromStatus = node.status?.capacity?.['nvidia.com/gpu'];
  if (fromStatus !== undefined) return quantity(fromStatus);
  return quantity(labels[NOMA_LABELS.gpuCount] ?? labels[COUNT_LABEL]);
}

/** The facts the CLI shows and ranks by, from a Node and the pods bound to it. */
export function nodeFacts(node: V1Node, podsOnNode: readonly V1Pod[] = []): NodeFacts {
  const labels = node.metadata?.labels ?? {};
  const live = podsOnNode.filter((p) => !isTerminated(p));
  const gpuByPod = live.map(podGpus);
  // The claim is what the coordinator acts on; the older marks name a maintenance too.
  const maintenance =
    claimOf(node)?.maintenance ??
    node.metadata?.annotations?.[MAINTENANCE_ANNOTATION] ??
    labels[MAINTENANCE_LABEL];
  return {
    name: node.metadata?.name ?? '',
    tier: labels[TIER_LABEL],
    sku: skuOf(labels),
    gpus: gpuCountOf(node, labels),
    ready: node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
    schedulable: node.spec?.unschedulable !== true,
    inMaintenance:
      maintenance !== undefined ||
      (node.spec?.taints?.some((t) => t.key === MAINTENANCE_TAINT.key) ?? false),
    maintenance,
    controlPlane: CONTROL_PLANE_LABELS.some((k) => k in labels),
    agent: node.metadata?.annotations?.[MANAGED_LABELS_ANNOTATION] ? 'labeled' : 'unknown',
    selectedFor: labels[SELECTED_FOR_LABEL],
    gpusRequested: gpuByPod.reduce((s, n) => s + n, 0),
    gpuPods: gpuByPod.filter((n) => n > 0).length,
  };
}

/** Groups pods by the node they are bound to. */
export function podsByNode(pods: readonly V1Pod[]): Map<string, V1Pod[]> {
  const map = new Map<string, V1Pod[]>();
  for (const pod of pods) {
    const node = pod.spec?.nodeName;
    if (node === undefined || node === '') continue;
    const list = map.get(node) ?? [];
    list.push(pod);
    map.set(node, list);
  }
  return map;
}

/** The coordinator's default unplanned-downtime taint key (`--unplanned-downtime-taint`). */
export const DEFAULT_DOWNTIME_TAINT_KEY = 'noma.dev/unreachable';

/** What an operator asks of a node that may be down: the `noma nodes` columns beyond NodeFacts. */
export interface NodeHealth {
  /** The Ready condition's status (`True`, `False`, `Unknown`); undefined when it has none. */
  readonly readyStatus: string | undefined;
  readonly readyReason: string | undefined;
  /** When a node that is not Ready stopped being Ready (the condition's lastTransitionTime). */
  readonly downSince: string | undefined;
  /** noma's unplanned-downtime taint on the node, as `key[=value]:effect`. */
  readonly downtimeTaint: string | undefined;
  /** When the coordinator added it, from its record on the node. */
  readonly downtimeTaintedAt: string | undefined;
  /** `healthy`, `degraded`, or what else the label says; undefined without the label. */
  readonly gpuHealth: string | undefined;
  /** The agent's detail on a degraded node (its annotation: JSON when it parses, else text). */
  readonly gpuHealthDetail: unknown;
  /** The node's phase in the maintenance that claims it (the claim annotation's contract). */
  readonly phase: string | undefined;
}

const isoTime = (t: Date | undefined): string | undefined =>
  t === undefined || Number.isNaN(t.getTime()) ? undefined : t.toISOString();

const taintText = (t: V1Taint): string =>
  `${t.key}${t.value === undefined || t.value === '' ? '' : `=${t.value}`}:${t.effect}`;

function jsonObject(text: string | undefined): Record<string, unknown> | undefined {
  if (text === undefined) return undefined;
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The downtime taint on the node. The coordinator records the taint it added (its key is
 * configurable, e.g. `runai=drain:NoExecute`) in DOWNTIME_ANNOTATION; without a record, a
 * taint with the default key counts (one put there by hand, or by a coordinator before the
 * record was written).
 */
function downtimeTaintOf(node: V1Node): { taint?: string; taintedAt?: string } {
  const record = jsonObject(node.metadata?.annotations?.[DOWNTIME_ANNOTATION]);
  const recorded = record?.['taint'] as { key?: unknown; effect?: unknown } | undefined;
  const taints = node.spec?.taints ?? [];
  const taint =
    typeof recorded?.key === 'string'
      ? taints.find((t) => t.key === recorded.key && t.effect === recorded.effect)
      : taints.find((t) => t.key === DEFAULT_DOWNTIME_TAINT_KEY);
  if (taint === undefined) return {};
  const taintedAt = record?.['taintedAt'];
  return {
    taint: taintText(taint),
    ...(typeof taintedAt === 'string' && taintedAt !== '' ? { taintedAt } : {}),
  };
}

/** Pure: Ready, down since, downtime taint, GPU health and claim phase of a Node. */
export function nodeHealth(node: V1Node): NodeHealth {
  const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
  const downtime = downtimeTaintOf(node);
  const detail = node.metadata?.annotations?.[GPU_HEALTH_DETAIL_ANNOTATION];
  const phase = claimOf(node)?.phase;
  return {
    readyStatus: ready?.status,
    readyReason: ready?.reason,
    downSince: ready?.status === 'True' ? undefined : isoTime(ready?.lastTransitionTime),
    downtimeTaint: downtime.taint,
    downtimeTaintedAt: downtime.taintedAt,
    gpuHealth: node.metadata?.labels?.[GPU_HEALTH_LABEL],
    gpuHealthDetail: jsonObject(detail) ?? detail,
    phase: phase === '' ? undefined : phase,
  };
}

/** An agent connected to the coordinator's link, as its `/agents` reports it. */
export interface AgentConnection {
  readonly connectedAt: string | undefined;
  readonly lastHeartbeat: string | undefined;
}

/**
 * Pure: the coordinator's `/agents` answer (`{agents: [{node, connectedAt, lastHeartbeat, …}]}`)
 * by node; undefined when the body is not that shape, so the caller says "unknown" rather than
 * "not connected".
 */
export function parseAgents(body: unknown): Map<string, AgentConnection> | undefined {
  const list = (body as { agents?: unknown } | null)?.agents;
  if (!Array.isArray(list)) return undefined;
  const map = new Map<string, AgentConnection>();
  for (const item of list as unknown[]) {
    const a = item as Record<string, unknown> | null;
    const node = a?.['node'];
    if (typeof node !== 'string' || node === '') continue;
    const text = (v: unknown) => (typeof v === 'string' ? v : undefined);
    map.set(node, {
      connectedAt: text(a?.['connectedAt']),
      lastHeartbeat: text(a?.['lastHeartbeat']),
    });
  }
  return map;
}
