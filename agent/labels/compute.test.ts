import { describe, expect, it } from 'vitest';
import { fixtureOutput } from '../../test/support/nvidia-smi.js';
import { parseGpuCsv, type Gpu } from '../discovery/nvidia-smi.js';
import { computeLabels, invalidLabels } from './compute.js';
import { loadRules } from './load-rules.js';
import { DEFAULT_RULES, rulesFrom, type LabelRules } from './rules.js';
import { skuOf } from './sku.js';

function gpusOf(fixture: string): Gpu[] {
  const result = parseGpuCsv(fixtureOutput(fixture));
  if (!result.ok) throw new Error(result.error);
  return result.gpus;
}

function rules(doc: unknown): LabelRules {
  const result = rulesFrom(doc);
  if (!result.ok) throw new Error(result.errors.join('\n'));
  return result.rules;
}

describe('skuOf', () => {
  it.each([
    ['NVIDIA GeForce RTX 5070', 'rtx5070'],
    ['NVIDIA GeForce RTX 3050', 'rtx3050'],
    ['NVIDIA H100 80GB HBM3', 'h100'],
    ['NVIDIA H100 PCIe', 'h100'],
    ['NVIDIA A100-SXM4-40GB', 'a100'],
    ['NVIDIA L4', 'l4'],
    ['NVIDIA L40S', 'l40s'],
    ['Tesla V100-SXM2-16GB', 'v100'],
    ['NVIDIA RTX A6000', 'rtxa6000'],
    ['NVIDIA GeForce RTX 4070 Ti SUPER', 'rtx4070ti'],
    ['NVIDIA GeForce GTX 1080 Ti', 'gtx1080ti'],
    ['NVIDIA RTX PRO 6000 Blackwell Workstation Edition', 'rtxpro6000'],
    ['NVIDIA GH200 480GB', 'gh200'],
    ['NVIDIA', 'unknown'],
  ])('%s → %s', (product, sku) => {
    expect(skuOf(product)).toBe(sku);
  });

  it('lets an alias override the derivation (first match wins)', () => {
    const aliases = [
      { product: '*RTX 6000 Ada*', sku: 'rtx6000ada' },
      { product: '*RTX 6000*', sku: 'never' },
    ];
    expect(skuOf('NVIDIA RTX 6000 Ada Generation', aliases)).toBe('rtx6000ada');
    expect(skuOf('NVIDIA H100 80GB HBM3', aliases)).toBe('h100');
  });
});

describe('computeLabels with the default rules (the seed schema)', () => {
  it('labels the seed dual-GPU node yeezyai (RTX 5070 + RTX 3050)', () => {
    const labels = computeLabels(
      { nodeName: 'yeezyai', gpus: gpusOf('rtx5070-rtx3050.csv') },
      DEFAULT_RULES,
    );
    expect(labels).toEqual({
      'nvidia.com/gpu': 'true',
      'node-role.kubernetes.io/gpu-worker': 'true',
      'gpu.nvidia.present': 'true',
      'gpu.count': '2',
      'gpu.rtx5070': 'true',
      'gpu.rtx3050': 'true',
      accelerator: 'nvidia-gpu',
      'node-type': 'gpu-compute',
      'hardware.tier': 'dual-gpu',
      'noma.dev/gpu.count': '2',
      'noma.dev/gpu.product': 'mixed',
      'noma.dev/gpu.memory-mib': '8192',
      'noma.dev/gpu.driver': '570.133.07',
    });
  });

  it('labels an 8x H100 node', () => {
    const labels = computeLabels(
      { nodeName: 'gpu-01', gpus: gpusOf('h100-sxm-x8.csv') },
      DEFAULT_RULES,
    );
    expect(labels).toMatchObject({
      'gpu.count': '8',
      'gpu.h100': 'true',
      'hardware.tier': 'dual-gpu',
      'noma.dev/gpu.product': 'NVIDIA-H100-80GB-HBM3',
      'noma.dev/gpu.memory-mib': '81559',
      'noma.dev/gpu.driver': '550.90.07',
      'noma.dev/gpu.mig': 'disabled',
    });
    expect(Object.keys(labels).filter((k) => k.startsWith('gpu.') && k !== 'gpu.count')).toEqual([
      'gpu.nvidia.present',
      'gpu.h100',
    ]);
    expect(labels['voice-pipeline']).toBeUndefined();
  });

  it('labels a 4x A100 node', () => {
    const labels = computeLabels(
      { nodeName: 'gpu-02', gpus: gpusOf('a100-sxm4-40gb-x4.csv') },
      DEFAULT_RULES,
    );
    expect(labels).toMatchObject({
      'gpu.a100': 'true',
      'gpu.count': '4',
      'noma.dev/gpu.product': 'NVIDIA-A100-SXM4-40GB',
      'noma.dev/gpu.memory-mib': '40960',
    });
  });

  it('a single datacenter GPU of a configured SKU is high-performance, with the voice pipeline', () => {
    const [one] = gpusOf('h100-pcie-mig.csv');
    const labels = computeLabels({ nodeName: 'gpu-03', gpus: one ? [one] : [] }, DEFAULT_RULES);
    expect(labels).toMatchObject({
      'hardware.tier': 'high-performance',
      'voice-pipeline': 'enabled',
      'noma.dev/gpu.mig': 'enabled',
    });
  });

  it('a single L4 is standard and says nothing about MIG', () => {
    const labels = computeLabels({ nodeName: 'gpu-04', gpus: gpusOf('l4.csv') }, DEFAULT_RULES);
    expect(labels).toMatchObject({
      'gpu.l4': 'true',
      'gpu.count': '1',
      'hardware.tier': 'standard',
      'noma.dev/gpu.product': 'NVIDIA-L4',
    });
    expect(labels).not.toHaveProperty('noma.dev/gpu.mig');
    expect(labels).not.toHaveProperty('voice-pipeline');
  });

  it('a node without GPUs gets only its tier', () => {
    expect(computeLabels({ nodeName: 'thinkpad01', gpus: [] }, DEFAULT_RULES)).toEqual({
      'hardware.tier': 'standard',
    });
  });

  it.each([
    'h100-sxm-x8.csv',
    'a100-sxm4-40gb-x4.csv',
    'rtx5070-rtx3050.csv',
    'l4.csv',
    'h100-pcie-mig.csv',
  ])('every label computed for %s is valid', (fixture) => {
    expect(
      invalidLabels(computeLabels({ nodeName: 'n', gpus: gpusOf(fixture) }, DEFAULT_RULES)),
    ).toEqual([]);
  });

  it('cuts a long product name to a valid value', () => {
    const [gpu] = gpusOf('l4.csv');
    if (gpu === undefined) throw new Error('fixture');
    const long = { ...gpu, name: `NVIDIA ${'Extremely Long Model Name '.repeat(5)}(rev 2)` };
    const labels = computeLabels({ nodeName: 'n', gpus: [long] }, DEFAULT_RULES);
    expect(labels['noma.dev/gpu.product']).toHaveLength(63);
    expect(invalidLabels(labels)).toEqual([]);
  });
});

describe('computeLabels with the seed cluster rules file', () => {
  it.each([
    { node: 'yeezyai', fixture: 'rtx5070-rtx3050.csv', tier: 'dual-gpu', voice: undefined },
    { node: 'pgbee', fixture: undefined, tier: 'high-performance', voice: 'enabled' },
    { node: 'pgmac01', fixture: undefined, tier: 'high-performance', voice: 'enabled' },
    { node: 'pglenovo01', fixture: undefined, tier: 'standard', voice: undefined },
    { node: 'thinkpad01', fixture: undefined, tier: 'standard', voice: undefined },
  ])('$node is $tier', async ({ node, fixture, tier, voice }) => {
    const loaded = await loadRules(
      new URL('./examples/seed-cluster.yaml', import.meta.url).pathname,
    );
    if (!loaded.ok) throw new Error(loaded.errors.join('\n'));
    const gpus = fixture === undefined ? [] : gpusOf(fixture);
    const labels = computeLabels({ nodeName: node, gpus }, loaded.rules);
    expect(labels['hardware.tier']).toBe(tier);
    expect(labels['voice-pipeline']).toBe(voice);
  });
});

describe('computeLabels with custom rules', () => {
  it('can turn off counts, SKUs, tiers and noma keys', () => {
    const r = rules({
      countLabel: '',
      skuLabel: { prefix: '', value: 'true' },
      tier: { label: '', default: 'x', rules: [] },
      tierLabels: {},
      nomaLabels: false,
    });
    expect(computeLabels({ nodeName: 'n', gpus: gpusOf('l4.csv') }, r)).toEqual(
      DEFAULT_RULES.gpuLabels,
    );
    expect(computeLabels({ nodeName: 'n', gpus: [] }, r)).toEqual({});
  });

  it('uses a vendor-prefixed SKU key and the first matching tier rule', () => {
    const r = rules({
      skuLabel: { prefix: 'example.com/gpu-', value: 'yes' },
      tier: {
        label: 'example.com/tier',
        default: 'basic',
        rules: [
          { value: 'inference', skus: ['l4'] },
          { value: 'big', minGpus: 1 },
        ],
      },
      tierLabels: { inference: { 'example.com/serving': 'on' } },
    });
    expect(computeLabels({ nodeName: 'n', gpus: gpusOf('l4.csv') }, r)).toMatchObject({
      'example.com/gpu-l4': 'yes',
      'example.com/tier': 'inference',
      'example.com/serving': 'on',
    });
  });
});
