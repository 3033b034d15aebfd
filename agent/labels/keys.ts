// The label keys a rule set can produce: what the admission policy noma-agent-label-keys
// (deploy/agent-node-restriction.yaml) lets the agent set or remove on its Node. Its params
// ConfigMap is written from this by `noma rules keys` (and `npm run gen` for deploy/), never by
// the agent, so an agent cannot widen its own key set.
import { GPU_HEALTH_LABEL, NOMA_LABELS } from '../../shared/labels.js';
import type { LabelRules } from './rules.js';

/** The params of noma-agent-label-keys: its name in deploy/, and the format it reads. */
export const LABEL_KEYS_CONFIGMAP = 'noma-agent-label-keys';

export interface LabelKeySet {
  /** Exact keys, sorted. */
  readonly keys: readonly string[];
  /**
   * Prefixes, sorted: each stands for the keys `<prefix><sku>`, a SKU being lowercase letters
   * and digits (what skuOf and the rules' skuAliases produce), e.g. `gpu.` → `gpu.h100`.
   */
  readonly prefixes: readonly string[];
}

/** A SKU as the policy reads one after a prefix (agent/labels/sku.ts makes no other). */
const SKU_RE = /^[a-z0-9]+$/;

/**
 * Every key computeLabels (agent/labels/compute.ts) and the agent (its health label) can put on
 * a Node under `rules`, whatever the GPUs. Keys of rules that are switched off ("" or false) are
 * left out. The SKU labels are the only keys made from the inventory: they are a prefix.
 */
export function labelKeySet(rules: LabelRules): LabelKeySet {
  const keys = new Set<string>(Object.keys(rules.gpuLabels));
  if (rules.countLabel !== '') keys.add(rules.countLabel);
  if (rules.tier.label !== '') {
    keys.add(rules.tier.label);
    // tierLabels apply only with a tier label (computeLabels).
    for (const labels of Object.values(rules.tierLabels)) {
      for (const k of Object.keys(labels)) keys.add(k);
    }
  }
  if (rules.nomaLabels) for (const k of Object.values(NOMA_LABELS)) keys.add(k);
  // agent.ts adds the health label to whatever the rules produce.
  keys.add(GPU_HEALTH_LABEL);
  const prefixes = rules.skuLabel.prefix === '' ? [] : [rules.skuLabel.prefix];
  return { keys: [...keys].sort(), prefixes };
}

/** The union of several key sets (rules before and after a change, while agents roll over). */
export function mergeKeySets(sets: readonly LabelKeySet[]): LabelKeySet {
  const keys = new Set(sets.flatMap((s) => s.keys));
  const prefixes = new Set(sets.flatMap((s) => s.prefixes));
  return { keys: [...keys].sort(), prefixes: [...prefixes].sort() };
}

/** Whether the policy lets the agent set or remove `key` under `set` (its CEL, in TypeScript). */
export function keyAllowed(set: LabelKeySet, key: string): boolean {
  if (set.keys.includes(key)) return true;
  return set.prefixes.some((p) => key.startsWith(p) && SKU_RE.test(key.slice(p.length)));
}

export interface ConfigMapTarget {
  readonly name: string;
  readonly namespace: string;
}

/** The params ConfigMap for `set`: one key, or one prefix, a line. */
export function labelKeysConfigMap(
  set: LabelKeySet,
  target: ConfigMapTarget = { name: LABEL_KEYS_CONFIGMAP, namespace: 'noma-system' },
): {
  apiVersion: 'v1';
  kind: 'ConfigMap';
  metadata: { name: string; namespace: string; labels: Record<string, string> };
  data: { keys: string; prefixes: string };
} {
  const lines = (items: readonly string[]) => items.map((i) => `${i}\n`).join('');
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: target.name,
      namespace: target.namespace,
      labels: { 'app.kubernetes.io/name': 'noma', 'app.kubernetes.io/component': 'agent' },
    },
    data: { keys: lines(set.keys), prefixes: lines(set.prefixes) },
  };
}
