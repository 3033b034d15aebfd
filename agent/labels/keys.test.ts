import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FIXTURES_DIR, fixtureOutput } from '../../test/support/nvidia-smi.js';
import { parseGpuCsv, type Gpu } from '../discovery/nvidia-smi.js';
import { computeLabels } from './compute.js';
import { keyAllowed, labelKeySet, mergeKeySets, type LabelKeySet } from './keys.js';
import { DEFAULT_RULES, rulesFrom, type LabelRules } from './rules.js';

function rules(doc: unknown): LabelRules {
  const result = rulesFrom(doc);
  if (!result.ok) throw new Error(result.errors.join('\n'));
  return result.rules;
}

const NOMA_KEYS = [
  'noma.dev/gpu.count',
  'noma.dev/gpu.driver',
  'noma.dev/gpu.health',
  'noma.dev/gpu.memory-mib',
  'noma.dev/gpu.mig',
  'noma.dev/gpu.product',
];
const SEED_KEYS = [
  'accelerator',
  'gpu.count',
  'gpu.nvidia.present',
  'hardware.tier',
  'node-role.kubernetes.io/gpu-worker',
  'node-type',
  ...NOMA_KEYS,
  'nvidia.com/gpu',
  'voice-pipeline',
];

describe('labelKeySet: the keys a rule set can produce', () => {
  it.each<[string, unknown, LabelKeySet]>([
    ['the built-in rules', {}, { keys: SEED_KEYS, prefixes: ['gpu.'] }],
    [
      'nothing but the health label when every rule is off',
      {
        gpuLabels: {},
        countLabel: '',
        skuLabel: { prefix: '', value: 'true' },
        tier: { label: '', default: 'standard', rules: [] },
        tierLabels: {},
        nomaLabels: false,
      },
      { keys: ['noma.dev/gpu.health'], prefixes: [] },
    ],
    [
      'custom keys and a prefixed SKU label',
      {
        gpuLabels: { 'example.com/gpu': 'yes' },
        countLabel: 'example.com/gpus',
        skuLabel: { prefix: 'sku.example.com/', value: 'present' },
        tier: { label: 'example.com/tier', default: 'small', rules: [] },
        tierLabels: { small: { 'example.com/small': 'true' } },
        nomaLabels: false,
      },
      {
        keys: [
          'example.com/gpu',
          'example.com/gpus',
          'example.com/small',
          'example.com/tier',
          'noma.dev/gpu.health',
        ],
        prefixes: ['sku.example.com/'],
      },
    ],
    [
      'no tier labels without a tier label (computeLabels applies them only with one)',
      {
        gpuLabels: {},
        tier: { label: '', default: 'standard', rules: [] },
        tierLabels: { standard: { 'only-with-tier': 'x' } },
        nomaLabels: false,
      },
      { keys: ['gpu.count', 'noma.dev/gpu.health'], prefixes: ['gpu.'] },
    ],
    [
      'the tier labels of every tier, matched or not',
      {
        gpuLabels: {},
        countLabel: '',
        tier: {
          label: 'tier',
          default: 'a',
          rules: [{ value: 'b', minGpus: 2 }],
        },
        tierLabels: { a: { 'tier-a': 'x' }, b: { 'tier-b': 'x' } },
        nomaLabels: false,
      },
      { keys: ['noma.dev/gpu.health', 'tier', 'tier-a', 'tier-b'], prefixes: ['gpu.'] },
    ],
  ])('%s', (_name, doc, want) => {
    expect(labelKeySet(rules(doc))).toEqual(want);
  });

  it('merges rule sets (old and new rules while agents roll over), sorted, without repeats', () => {
    const old = labelKeySet(rules({ countLabel: 'gpus', nomaLabels: false }));
    const next = labelKeySet(rules({ skuLabel: { prefix: 'model.', value: 'true' } }));
    const merged = mergeKeySets([old, next]);
    expect(merged.prefixes).toEqual(['gpu.', 'model.']);
    expect(merged.keys).toContain('gpus');
    expect(merged.keys).toContain('gpu.count');
    expect(merged.keys).toEqual([...new Set(merged.keys)].sort());
  });
});

describe('keyAllowed: the policy noma-agent-label-keys, in TypeScript', () => {
  const set = labelKeySet(DEFAULT_RULES);
  it.each([
    ['gpu.count', true],
    ['nvidia.com/gpu', true],
    ['noma.dev/gpu.product', true],
    ['gpu.h100', true],
    ['gpu.rtx4070ti', true],
    // A prefix stands for a SKU: lowercase letters and digits only.
    ['gpu.', false],
    ['gpu.H100', false],
    ['gpu.x/y', false],
    ['gpu.nvidia.evil', false],
    ['team', false],
    ['node-role.kubernetes.io/control-plane', false],
    ['node-restriction.kubernetes.io/x', false],
    ['noma.dev/maintenance', false],
    ['noma.dev/selected-for', false],
  ])('%s → %s', (key, allowed) => {
    expect(keyAllowed(set, key)).toBe(allowed);
  });
});

/** Every captured nvidia-smi output that parses: real product names, counts and MIG modes. */
function inventories(): Gpu[][] {
  const out: Gpu[][] = [[]];
  for (const file of readdirSync(FIXTURES_DIR).filter((f) => f.endsWith('.csv'))) {
    const parsed = parseGpuCsv(fixtureOutput(file));
    if (parsed.ok) out.push(parsed.gpus);
  }
  return out;
}

describe('what computeLabels produces is always inside the key set', () => {
  const ruleSets: [string, LabelRules][] = [
    ['built-in', DEFAULT_RULES],
    [
      'aliases, name tiers, a prefixed SKU label',
      rules({
        skuLabel: { prefix: 'sku.example.com/', value: 'true' },
        skuAliases: [{ product: '*H100*', sku: 'hopper' }],
        tier: {
          label: 'tier',
          default: 'std',
          rules: [
            { value: 'lab', nodeNames: ['lab-*'] },
            { value: 'big', minGpus: 4 },
          ],
        },
        tierLabels: { lab: { 'lab.example.com/owner': 'research' }, big: { big: 'yes' } },
      }),
    ],
  ];
  const gpuSets = inventories();
  it.each(ruleSets)('%s rules', (_name, r) => {
    expect(gpuSets.length).toBeGreaterThan(5);
    const set = labelKeySet(r);
    for (const nodeName of ['node-1', 'lab-7']) {
      for (const gpus of gpuSets) {
        // The agent adds the health label to what the rules produce (agent.ts).
        const keys = [...Object.keys(computeLabels({ nodeName, gpus }, r)), 'noma.dev/gpu.health'];
        expect(keys.filter((k) => !keyAllowed(set, k))).toEqual([]);
      }
    }
  });

  it('a SKU cut to fit the label name still matches its prefix', () => {
    const long = 'x'.repeat(59);
    const r = rules({ skuLabel: { prefix: `${long}.`, value: 'true' } });
    const gpu = { ...(inventories()[1]?.[0] as Gpu), name: 'NVIDIA Averyveryverylongmodel9000' };
    const keys = Object.keys(computeLabels({ nodeName: 'n', gpus: [gpu] }, r));
    const sku = keys.find((k) => k.startsWith(`${long}.`));
    expect(sku).toHaveLength(63);
    expect(keyAllowed(labelKeySet(r), sku ?? '')).toBe(true);
  });
});
