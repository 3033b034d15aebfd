import {
  labelKeyError,
  labelValueError,
  MAX_LABEL_VALUE_LENGTH,
  NOMA_LABELS,
  sanitizeLabelValue,
} from '../../shared/labels.js';
import type { Gpu } from '../discovery/nvidia-smi.js';
import type { LabelRules, TierRule } from './rules.js';
import { globToRegExp, skuOf } from './sku.js';

export type Labels = Record<string, string>;

export interface LabelInput {
  readonly nodeName: string;
  /** Empty for a node without an NVIDIA driver. */
  readonly gpus: readonly Gpu[];
}

function tierMatches(rule: TierRule, count: number, skus: ReadonlySet<string>, node: string) {
  if (rule.minGpus !== undefined && count >= rule.minGpus) return true;
  if (rule.skus?.some((s) => skus.has(s)) === true) return true;
  return rule.nodeNames?.some((glob) => globToRegExp(glob).test(node)) === true;
}

/** The tier of a node: the first rule with a matching condition, else the default. */
export function tierOf(rules: LabelRules, input: LabelInput): string {
  const skus = new Set(input.gpus.map((g) => skuOf(g.name, rules.skuAliases)));
  const hit = rules.tier.rules.find((r) => tierMatches(r, input.gpus.length, skus, input.nodeName));
  return hit?.value ?? rules.tier.default;
}

function nomaLabels(gpus: readonly Gpu[]): Labels {
  const products = new Set(gpus.map((g) => g.name));
  const drivers = new Set(gpus.map((g) => g.driverVersion));
  const [first] = gpus;
  if (first === undefined) return {};
  const migCapable = gpus.filter((g) => g.migMode !== 'unsupported');
  const labels: Labels = {
    [NOMA_LABELS.gpuCount]: String(gpus.length),
    // A mixed node has no single product; gpu.<sku> labels name each one.
    [NOMA_LABELS.gpuProduct]: products.size === 1 ? sanitizeLabelValue(first.name) : 'mixed',
    // The smallest GPU is what a pod asking for "a GPU" can count on.
    [NOMA_LABELS.gpuMemoryMiB]: String(Math.min(...gpus.map((g) => g.memoryMiB))),
    [NOMA_LABELS.gpuDriver]: drivers.size === 1 ? sanitizeLabelValue(first.driverVersion) : 'mixed',
  };
  if (migCapable.length > 0) {
    labels[NOMA_LABELS.gpuMig] = migCapable.some((g) => g.migMode === 'enabled')
      ? 'enabled'
      : 'disabled';
  }
  return labels;
}

/**
 * The labels a node should carry, from its inventory, its name and the rules. Pure: the agent
 * applies the result; tests table-check it.
 */
export function computeLabels(input: LabelInput, rules: LabelRules): Labels {
  const labels: Labels = {};
  const { gpus } = input;
  if (gpus.length > 0) {
    Object.assign(labels, rules.gpuLabels);
    if (rules.countLabel !== '') labels[rules.countLabel] = String(gpus.length);
    if (rules.skuLabel.prefix !== '') {
      const room = MAX_LABEL_VALUE_LENGTH - rules.skuLabel.prefix.replace(/^.*\//, '').length;
      for (const gpu of gpus) {
        const sku = skuOf(gpu.name, rules.skuAliases).slice(0, room);
        labels[`${rules.skuLabel.prefix}${sku}`] = rules.skuLabel.value;
      }
    }
    if (rules.nomaLabels) Object.assign(labels, nomaLabels(gpus));
  }
  if (rules.tier.label !== '') {
    const tier = tierOf(rules, input);
    labels[rules.tier.label] = tier;
    Object.assign(labels, rules.tierLabels[tier] ?? {});
  }
  return labels;
}

/** Every label in `labels` that the API server would refuse, with the reason. */
export function invalidLabels(labels: Labels): string[] {
  const errors: string[] = [];
  for (const [k, v] of Object.entries(labels)) {
    const err = labelKeyError(k);
    if (err !== undefined) errors.push(`key "${k}": ${err}`);
    const verr = labelValueError(v);
    if (verr !== undefined) errors.push(`${k}="${v}": ${verr}`);
  }
  return errors;
}
