import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { parse as parseYaml } from 'yaml';
import { formatErrors, validate } from '../../shared/api/validate.js';
import { labelKeyError, labelValueError } from '../../shared/labels.js';

/**
 * The label rules: which labels a node gets from its GPU inventory and its name. Loaded from a
 * YAML or JSON file (a ConfigMap in production); every top-level field is optional and falls
 * back to the default below, which reproduces the seed label schema.
 */

const LabelMap = Type.Record(Type.String(), Type.String(), {
  description: 'label key → value',
});

const TierRuleSchema = Type.Object(
  {
    value: Type.String({ minLength: 1, description: 'The tier, e.g. "high-performance".' }),
    minGpus: Type.Optional(Type.Integer({ minimum: 1, description: 'At least this many GPUs.' })),
    skus: Type.Optional(
      Type.Array(Type.String({ pattern: '^[a-z0-9]+$' }), {
        description: 'Any GPU of one of these SKUs (as in gpu.<sku>).',
      }),
    ),
    nodeNames: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), {
        description: 'Node-name globs ("pgmac*"); `*` matches anything.',
      }),
    ),
  },
  { additionalProperties: false },
);

export const RulesSchema = Type.Object(
  {
    gpuLabels: Type.Optional(LabelMap),
    countLabel: Type.Optional(
      Type.String({ description: 'Key for the GPU count; "" turns it off.' }),
    ),
    skuLabel: Type.Optional(
      Type.Object(
        {
          prefix: Type.String({ description: 'gpu.<sku>: key prefix; "" turns SKU labels off.' }),
          value: Type.String(),
        },
        { additionalProperties: false },
      ),
    ),
    skuAliases: Type.Optional(
      Type.Array(
        Type.Object(
          { product: Type.String({ minLength: 1 }), sku: Type.String({ pattern: '^[a-z0-9]+$' }) },
          { additionalProperties: false },
        ),
      ),
    ),
    tier: Type.Optional(
      Type.Object(
        {
          label: Type.String({ description: 'Key of the tier label; "" turns tiers off.' }),
          default: Type.String({ description: 'Tier when no rule matches.' }),
          rules: Type.Array(TierRuleSchema, { description: 'First match wins.' }),
        },
        { additionalProperties: false },
      ),
    ),
    tierLabels: Type.Optional(
      Type.Record(Type.String(), LabelMap, { description: 'Extra labels per tier.' }),
    ),
    nomaLabels: Type.Optional(Type.Boolean({ description: 'Set the noma.dev/gpu.* labels.' })),
  },
  { additionalProperties: false },
);
export type RulesFile = Static<typeof RulesSchema>;
export type TierRule = Static<typeof TierRuleSchema>;
export type LabelRules = Required<RulesFile>;

export const DEFAULT_RULES: LabelRules = {
  gpuLabels: {
    'nvidia.com/gpu': 'true',
    'node-role.kubernetes.io/gpu-worker': 'true',
    'gpu.nvidia.present': 'true',
    accelerator: 'nvidia-gpu',
    'node-type': 'gpu-compute',
  },
  countLabel: 'gpu.count',
  skuLabel: { prefix: 'gpu.', value: 'true' },
  skuAliases: [],
  tier: {
    label: 'hardware.tier',
    default: 'standard',
    rules: [
      { value: 'dual-gpu', minGpus: 2 },
      { value: 'high-performance', skus: ['h100', 'h200', 'b200', 'gb200', 'gh200', 'a100'] },
    ],
  },
  tierLabels: { 'high-performance': { 'voice-pipeline': 'enabled' } },
  nomaLabels: true,
};

/**
 * Label namespaces that belong to Kubernetes itself. `node-role.kubernetes.io` is allowed
 * because the seed schema uses it for the gpu-worker role.
 */
function reservedKeyError(key: string): string | undefined {
  const slash = key.lastIndexOf('/');
  if (slash === -1) return undefined;
  const prefix = key.slice(0, slash);
  if (prefix === 'node-role.kubernetes.io') return undefined;
  if (/(^|\.)(kubernetes\.io|k8s\.io)$/.test(prefix)) {
    return `prefix "${prefix}" is reserved for Kubernetes`;
  }
  return undefined;
}

function checkKey(where: string, key: string, errors: string[]): void {
  const err = labelKeyError(key) ?? reservedKeyError(key);
  if (err !== undefined) errors.push(`${where}: label key "${key}" ${err}`);
}

function checkValue(where: string, value: string, errors: string[]): void {
  const err = labelValueError(value);
  if (err !== undefined) errors.push(`${where}: label value "${value}" ${err}`);
}

function checkLabelMap(where: string, map: Record<string, string>, errors: string[]): void {
  for (const [k, v] of Object.entries(map)) {
    checkKey(where, k, errors);
    checkValue(`${where}.${k}`, v, errors);
  }
}

/** Checks that cannot be expressed in the schema: label syntax, references, overlaps. */
function semanticErrors(rules: LabelRules): string[] {
  const errors: string[] = [];
  checkLabelMap('gpuLabels', rules.gpuLabels, errors);
  if (rules.countLabel !== '') checkKey('countLabel', rules.countLabel, errors);
  if (rules.skuLabel.prefix !== '') {
    // The longest SKU we produce is cut to fit; the prefix itself must leave room for one.
    checkKey('skuLabel.prefix', `${rules.skuLabel.prefix}x`, errors);
    checkValue('skuLabel.value', rules.skuLabel.value, errors);
  }
  const tiers = new Set([rules.tier.default, ...rules.tier.rules.map((r) => r.value)]);
  if (rules.tier.label !== '') {
    checkKey('tier.label', rules.tier.label, errors);
    for (const tier of tiers) checkValue('tier', tier, errors);
  }
  rules.tier.rules.forEach((r, i) => {
    if (r.minGpus === undefined && r.skus === undefined && r.nodeNames === undefined) {
      errors.push(
        `tier.rules[${i}] ("${r.value}"): needs at least one of minGpus, skus, nodeNames`,
      );
    }
  });
  for (const [tier, labels] of Object.entries(rules.tierLabels)) {
    if (!tiers.has(tier)) {
      errors.push(`tierLabels.${tier}: no such tier (known: ${[...tiers].join(', ')})`);
    }
    checkLabelMap(`tierLabels.${tier}`, labels, errors);
  }
  const fixedKeys = [...Object.keys(rules.gpuLabels), rules.countLabel, rules.tier.label].filter(
    (k) => k !== '',
  );
  const seen = new Set<string>();
  for (const k of fixedKeys) {
    if (seen.has(k)) errors.push(`label key "${k}" is produced by two rules`);
    seen.add(k);
  }
  for (const [tier, labels] of Object.entries(rules.tierLabels)) {
    for (const k of Object.keys(labels)) {
      if (seen.has(k)) errors.push(`tierLabels.${tier}: "${k}" is also produced by another rule`);
    }
  }
  return errors;
}

export type RulesResult = { ok: true; rules: LabelRules } | { ok: false; errors: string[] };

/** Validates a parsed rules document and fills in defaults. */
export function rulesFrom(doc: unknown): RulesResult {
  const data: unknown = doc ?? {};
  const checked = validate(RulesSchema, data);
  if (!checked.ok) return { ok: false, errors: formatErrors(checked.errors).split('; ') };
  const rules: LabelRules = { ...DEFAULT_RULES, ...Value.Clone(checked.value) };
  const errors = semanticErrors(rules);
  return errors.length > 0 ? { ok: false, errors } : { ok: true, rules };
}

/** Parses the text of a rules file (YAML, of which JSON is a subset). */
export function parseRules(text: string): RulesResult {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    return { ok: false, errors: [`not valid YAML/JSON: ${(err as Error).message}`] };
  }
  return rulesFrom(doc);
}
