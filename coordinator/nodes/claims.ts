// Pure: the marks noma keeps on the Node itself, so that "one maintenance per node" and "this
// cordon is noma's" survive a restart or a failover (the NodeMaintenance status alone is per
// maintenance, and a new leader lists maintenances in no particular order).
import type { V1Node, V1Taint } from '@kubernetes/client-node';
import { CLAIM_ANNOTATION, LEFT_BY_ANNOTATION } from '../../shared/maintenance-keys.js';
import { sameTaint, type TaintSpec } from './taints.js';

/** Which maintenance holds a node, and where the node was when that was last written. */
export interface Claim {
  /** `<namespace>/<name>` of the NodeMaintenance. */
  readonly maintenance: string;
  readonly uid: string;
  readonly phase: string;
}

/** What a maintenance that finished without `Complete` left on the node. */
export interface LeftBy {
  readonly maintenance: string;
  readonly uid: string;
  /** noma cordoned the node (it was schedulable before). */
  readonly unschedulable: boolean;
  readonly taints: readonly TaintSpec[];
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function parseJson(text: string | undefined): Record<string, unknown> | undefined {
  if (text === undefined) return undefined;
  try {
    const v: unknown = JSON.parse(text);
    return isRecord(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** The node's claim; a value that does not parse counts as no claim of noma's. */
export function claimOf(node: V1Node | undefined): Claim | undefined {
  const v = parseJson(node?.metadata?.annotations?.[CLAIM_ANNOTATION]);
  const maintenance = str(v?.['maintenance']);
  const uid = str(v?.['uid']);
  if (maintenance === undefined || uid === undefined || uid === '') return undefined;
  return { maintenance, uid, phase: str(v?.['phase']) ?? '' };
}

export const formatClaim = (c: Claim): string =>
  JSON.stringify({ maintenance: c.maintenance, uid: c.uid, phase: c.phase });

function taintList(v: unknown): TaintSpec[] {
  if (!Array.isArray(v)) return [];
  return v.flatMap((t): TaintSpec[] => {
    if (!isRecord(t)) return [];
    const key = str(t['key']);
    const effect = str(t['effect']);
    const value = str(t['value']);
    if (key === undefined || effect === undefined) return [];
    return [{ key, effect, ...(value === undefined ? {} : { value }) }];
  });
}

export function leftByOf(node: V1Node | undefined): LeftBy | undefined {
  const v = parseJson(node?.metadata?.annotations?.[LEFT_BY_ANNOTATION]);
  const maintenance = str(v?.['maintenance']);
  if (v === undefined || maintenance === undefined) return undefined;
  return {
    maintenance,
    uid: str(v['uid']) ?? '',
    unschedulable: v['unschedulable'] === true,
    taints: taintList(v['taints']),
  };
}

export const formatLeftBy = (l: LeftBy): string =>
  JSON.stringify({
    maintenance: l.maintenance,
    uid: l.uid,
    unschedulable: l.unschedulable,
    taints: l.taints.map((t) => ({
      key: t.key,
      effect: t.effect,
      ...(t.value === undefined ? {} : { value: t.value }),
    })),
  });

/** The claim of a maintenance other than `uid`, if the node carries one. */
export function foreignClaim(node: V1Node | undefined, uid: string): Claim | undefined {
  const c = claimOf(node);
  return c !== undefined && c.uid !== uid ? c : undefined;
}

export interface InitialState {
  readonly unschedulable: boolean;
  readonly taints: V1Taint[];
  /** Taints an earlier maintenance left: removed with noma's own when the node returns. */
  readonly inheritedTaints: TaintSpec[];
}

/**
 * The node's state before noma, as a restore should bring it back: what an earlier maintenance
 * left (LEFT_BY_ANNOTATION) is noma's, not the node's, so its cordon is undone and its taints go.
 */
export function initialStateOf(node: V1Node): InitialState {
  const left = leftByOf(node);
  const taints = node.spec?.taints ?? [];
  const inherited = left === undefined ? [] : left.taints;
  return {
    unschedulable: node.spec?.unschedulable === true && left?.unschedulable !== true,
    taints: taints.filter((t) => !inherited.some((i) => sameTaint(i, t))),
    inheritedTaints: taints.filter((t) => inherited.some((i) => sameTaint(i, t))),
  };
}

/** Ready condition not True: the kubelet stopped reporting or says the node is not ready. */
export function isNotReady(node: V1Node): boolean {
  const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
  return ready?.status !== 'True';
}

/**
 * Pure: whether a selected node that this maintenance does not hold is unavailable all the
 * same (Mellanox maintenance-operator's rule): NotReady, or cordoned by anyone.
 */
export const isUnavailable = (node: V1Node): boolean =>
  isNotReady(node) || node.spec?.unschedulable === true;
