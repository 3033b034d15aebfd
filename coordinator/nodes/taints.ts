// Pure taint arithmetic. The API server identifies a taint by key and effect; so do we.
import type { V1Taint } from '@kubernetes/client-node';

export interface TaintSpec {
  readonly key: string;
  readonly value?: string | undefined;
  readonly effect: string;
}

export const sameTaint = (a: TaintSpec, b: TaintSpec): boolean =>
  a.key === b.key && a.effect === b.effect;

/** `current` plus every taint of `add` it lacks; existing taints (and their order) are kept. */
export function addTaints(current: readonly V1Taint[], add: readonly TaintSpec[]): V1Taint[] {
  const out = [...current];
  for (const t of add) {
    if (!out.some((c) => sameTaint(c, t))) {
      out.push({
        key: t.key,
        effect: t.effect,
        ...(t.value === undefined ? {} : { value: t.value }),
      });
    }
  }
  return out;
}

/**
 * `current` without the taints noma added: those of `ours` that were not on the node before
 * (`initial`). A taint that was there before noma came stays, even if noma would also set it.
 */
export function removeOurTaints(
  current: readonly V1Taint[],
  ours: readonly TaintSpec[],
  initial: readonly TaintSpec[],
): V1Taint[] {
  const added = ours.filter((t) => !initial.some((i) => sameTaint(i, t)));
  return current.filter((c) => !added.some((t) => sameTaint(c, t)));
}

export const taintsEqual = (a: readonly TaintSpec[], b: readonly TaintSpec[]): boolean =>
  a.length === b.length &&
  a.every((t, i) => {
    const o = b[i];
    return o !== undefined && sameTaint(t, o) && (t.value ?? '') === (o.value ?? '');
  });
