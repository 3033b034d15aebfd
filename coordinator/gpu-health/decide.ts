// Pure: whether a Node gets or loses the degraded-GPU taint. The agent says how the GPUs are
// (label noma.dev/gpu.health); the coordinator, when --degraded-gpu-taint is set, turns
// `degraded` into a taint so that new GPU work goes elsewhere until the node is repaired or an
// operator accepts its smaller inventory.
import type { V1Taint } from '@kubernetes/client-node';
import { GPU_HEALTH_LABEL } from '../../shared/labels.js';
import { DEGRADED_GPU_TAINT_ANNOTATION } from '../../shared/maintenance-keys.js';
import { sameTaint, type TaintSpec } from '../nodes/taints.js';

export interface GpuTaintView {
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly taints: readonly V1Taint[];
}

/** What to write: the Node's new taints and the record annotation (null: remove it). */
export interface GpuTaintChange {
  readonly action: 'taint' | 'untaint' | 'forget';
  readonly taints: V1Taint[];
  readonly annotation: string | null;
}

export const formatTaint = (t: TaintSpec): string =>
  `${t.key}${t.value === undefined || t.value === '' ? '' : `=${t.value}`}:${t.effect}`;

/** `key[=value]:Effect` back into a taint; undefined for anything else. */
export function parseTaint(text: string): TaintSpec | undefined {
  const m = /^([^=:\s]+)(?:=([^:\s]*))?:(NoSchedule|PreferNoSchedule|NoExecute)$/.exec(text);
  if (m?.[1] === undefined || m[3] === undefined) return undefined;
  return { key: m[1], ...(m[2] === undefined ? {} : { value: m[2] }), effect: m[3] };
}

/**
 * Degraded and not tainted: add the taint and record it. Not degraded (healthy, or no GPU
 * health at all) and a recorded taint: remove exactly that one. A taint that was there
 * without our record (someone else's) is never touched, and never recorded as ours.
 */
export function decideGpuTaint(view: GpuTaintView, taint: TaintSpec): GpuTaintChange | undefined {
  const degraded = view.labels[GPU_HEALTH_LABEL] === 'degraded';
  const record = view.annotations[DEGRADED_GPU_TAINT_ANNOTATION];
  const recorded = record === undefined ? undefined : parseTaint(record);
  const has = (t: TaintSpec) => view.taints.some((c) => sameTaint(c, t));
  if (degraded) {
    if (record !== undefined || has(taint)) return undefined;
    const added: V1Taint = {
      key: taint.key,
      effect: taint.effect,
      ...(taint.value === undefined ? {} : { value: taint.value }),
    };
    return { action: 'taint', taints: [...view.taints, added], annotation: formatTaint(taint) };
  }
  if (record === undefined) return undefined;
  if (recorded === undefined || !has(recorded)) {
    // Someone removed our taint already (or the record is unreadable): only the record goes.
    return { action: 'forget', taints: [...view.taints], annotation: null };
  }
  return {
    action: 'untaint',
    taints: view.taints.filter((c) => !sameTaint(c, recorded)),
    annotation: null,
  };
}
