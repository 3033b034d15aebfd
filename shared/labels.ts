/**
 * Node label keys that noma itself defines, and the Kubernetes syntax rules for label keys and
 * values. The agent writes these; the coordinator and the CLI read them.
 */

/** Annotation on a Node: sorted, comma-separated keys of the labels the agent owns there. */
export const MANAGED_LABELS_ANNOTATION = 'noma.dev/managed-labels';

/** noma's own label keys (the seed schema's keys are configurable and live in the rules). */
export const NOMA_LABELS = {
  gpuProduct: 'noma.dev/gpu.product',
  gpuMemoryMiB: 'noma.dev/gpu.memory-mib',
  gpuDriver: 'noma.dev/gpu.driver',
  gpuCount: 'noma.dev/gpu.count',
  gpuMig: 'noma.dev/gpu.mig',
} as const;

export const MAX_LABEL_VALUE_LENGTH = 63;
const NAME_RE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Why `value` is not a valid label value, or undefined when it is. */
export function labelValueError(value: string): string | undefined {
  if (value.length > MAX_LABEL_VALUE_LENGTH) {
    return `must be at most ${MAX_LABEL_VALUE_LENGTH} characters (is ${value.length})`;
  }
  if (!NAME_RE.test(value)) {
    return 'must be empty or consist of alphanumerics, "-", "_" or "." and start and end with an alphanumeric';
  }
  return undefined;
}

/** Why `key` is not a valid label key (`[prefix/]name`), or undefined when it is. */
export function labelKeyError(key: string): string | undefined {
  const slash = key.lastIndexOf('/');
  const prefix = slash === -1 ? undefined : key.slice(0, slash);
  const name = slash === -1 ? key : key.slice(slash + 1);
  if (name === '') return 'name part must not be empty';
  const nameError = labelValueError(name);
  if (nameError !== undefined) return `name part ${nameError}`;
  if (prefix !== undefined) {
    if (prefix.length > 253) return 'prefix must be at most 253 characters';
    if (!prefix.split('.').every((part) => DNS_LABEL_RE.test(part))) {
      return 'prefix must be a lowercase DNS subdomain (e.g. "noma.dev")';
    }
  }
  return undefined;
}

/**
 * Turns free text (a GPU product name, a driver version) into a valid label value the way GPU
 * Feature Discovery does: spaces become "-", other characters outside [A-Za-z0-9-_.] are
 * dropped, and the result is cut to 63 characters with non-alphanumeric ends trimmed.
 */
export function sanitizeLabelValue(text: string): string {
  const cleaned = text
    .trim()
    .replace(/\s+/g, '-')
    .replace(/[^A-Za-z0-9\-_.]/g, '');
  return cleaned
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, MAX_LABEL_VALUE_LENGTH)
    .replace(/[^A-Za-z0-9]+$/, '');
}

/**
 * GPU health, kept by the agent: `healthy`, or `degraded` when fewer GPUs answer than the
 * inventory it remembers (the count and tier labels then stay as they were).
 */
export const GPU_HEALTH_LABEL = 'noma.dev/gpu.health';
export type GpuHealth = 'healthy' | 'degraded';

/** On a degraded Node: JSON {expected, answering, lost: [...]} (bounded), for people and tools. */
export const GPU_HEALTH_DETAIL_ANNOTATION = 'noma.dev/gpu.health-detail';

/**
 * Set by an operator (`noma nodes accept-inventory`) to the number of GPUs that answer now:
 * the agent takes that inventory as its new baseline and removes the annotation.
 */
export const ACCEPT_INVENTORY_ANNOTATION = 'noma.dev/accept-inventory';
