import { MANAGED_LABELS_ANNOTATION } from '../../shared/labels.js';
import type { Labels } from './compute.js';

/** What the Node looks like now (from a GET or a watch event). */
export interface NodeLabelsView {
  readonly labels: Readonly<Labels>;
  readonly annotations: Readonly<Labels>;
}

export interface PlanInput {
  readonly node: NodeLabelsView;
  /** The labels the node should carry now. */
  readonly desired: Readonly<Labels>;
  /** Labels this process applied last time (empty after a restart). */
  readonly lastApplied: Readonly<Labels>;
  /** Keys this process owned, in case the annotation was removed by someone. */
  readonly ownedInMemory?: readonly string[];
  /** Annotations to keep (a value) or to remove (null); others are never touched. */
  readonly annotations?: Readonly<Record<string, string | null>>;
}

export interface MergePatch {
  metadata: {
    labels?: Record<string, string | null>;
    annotations?: Record<string, string | null>;
  };
}

export interface LabelPlan {
  /** Labels added or changed. */
  readonly set: Readonly<Labels>;
  /** Keys we owned that the inventory no longer produces. */
  readonly remove: readonly string[];
  /** Keys we had applied with the same value that someone removed or changed since. */
  readonly restored: readonly string[];
  /** The JSON merge patch to send, or undefined when the Node is already as it should be. */
  readonly patch: MergePatch | undefined;
}

export function parseOwnedAnnotation(value: string | undefined): string[] {
  if (value === undefined) return [];
  return value
    .split(',')
    .map((k) => k.trim())
    .filter((k) => k !== '');
}

/**
 * Decides the patch that takes a Node from its current labels to the desired ones. It touches
 * only keys in `desired` and keys we owned before (annotation or memory): never any other label.
 */
export function planLabels(input: PlanInput): LabelPlan {
  const { node, desired, lastApplied } = input;
  const previouslyOwned = new Set([
    ...parseOwnedAnnotation(node.annotations[MANAGED_LABELS_ANNOTATION]),
    ...(input.ownedInMemory ?? []),
  ]);
  const set: Labels = {};
  const restored: string[] = [];
  for (const [key, value] of Object.entries(desired)) {
    if (node.labels[key] === value) continue;
    set[key] = value;
    if (lastApplied[key] === value) restored.push(key);
  }
  const remove = [...previouslyOwned]
    .filter((key) => !(key in desired) && key in node.labels)
    .sort();

  const owned = Object.keys(desired).sort().join(',');
  const annotationNow = node.annotations[MANAGED_LABELS_ANNOTATION];
  const annotation: string | null = owned === '' ? null : owned;
  const annotations: Record<string, string | null> = {};
  if ((annotationNow ?? null) !== annotation) annotations[MANAGED_LABELS_ANNOTATION] = annotation;
  for (const [key, value] of Object.entries(input.annotations ?? {})) {
    if ((node.annotations[key] ?? null) !== value) annotations[key] = value;
  }
  const annotationChanged = Object.keys(annotations).length > 0;

  if (Object.keys(set).length === 0 && remove.length === 0 && !annotationChanged) {
    return { set, remove, restored, patch: undefined };
  }
  const labels: Record<string, string | null> = { ...set };
  for (const key of remove) labels[key] = null;
  const patch: MergePatch = { metadata: {} };
  if (Object.keys(labels).length > 0) patch.metadata.labels = labels;
  if (annotationChanged) patch.metadata.annotations = annotations;
  return { set, remove, restored: restored.sort(), patch };
}
