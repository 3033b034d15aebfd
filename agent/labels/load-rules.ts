import { readFile } from 'node:fs/promises';
import type { Gpu } from '../discovery/nvidia-smi.js';
import { computeLabels, invalidLabels, type LabelInput } from './compute.js';
import { DEFAULT_RULES, parseRules, type LabelRules, type RulesResult } from './rules.js';

function sampleGpu(index: number, name: string): Gpu {
  return {
    index,
    name,
    uuid: `GPU-${String(index).padStart(8, '0')}`,
    memoryMiB: 81559,
    driverVersion: '550.90.07',
    pciBusId: `00000000:${String(index + 10).padStart(2, '0')}:00.0`,
    migMode: index % 2 === 0 ? 'enabled' : 'unsupported',
  };
}

/**
 * Inventories that exercise every branch of the rules: no GPU, each configured SKU and alias,
 * a mixed pair, a long odd product name, and each node-name pattern.
 */
function samples(rules: LabelRules): LabelInput[] {
  const products = [
    'NVIDIA H100 80GB HBM3',
    'NVIDIA GeForce RTX 5070',
    `NVIDIA ${'Very Long Experimental Accelerator Name '.repeat(4)}9000`,
    ...rules.skuAliases.map((a) => a.product.replace(/\*/g, 'x')),
    ...rules.tier.rules.flatMap((r) => r.skus ?? []),
  ];
  const names = [
    'node-1',
    ...rules.tier.rules.flatMap((r) => (r.nodeNames ?? []).map((g) => g.replace(/\*/g, 'x'))),
  ];
  const inventories: Gpu[][] = [
    [],
    ...products.map((p) => [sampleGpu(0, p)]),
    products.map((p, i) => sampleGpu(i, p)),
  ];
  return names.flatMap((nodeName) => inventories.map((gpus) => ({ nodeName, gpus })));
}

/** Runs the rules over sample inventories: any invalid label they could produce is an error. */
export function dryRunErrors(rules: LabelRules): string[] {
  const errors = new Set<string>();
  for (const input of samples(rules)) {
    for (const e of invalidLabels(computeLabels(input, rules))) errors.add(e);
  }
  return [...errors];
}

/** Reads and checks a rules file; without a path, the built-in defaults. */
export async function loadRules(path: string | undefined): Promise<RulesResult> {
  if (path === undefined) return { ok: true, rules: DEFAULT_RULES };
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    return { ok: false, errors: [`cannot read ${path}: ${(err as Error).message}`] };
  }
  const parsed = parseRules(text);
  if (!parsed.ok) return parsed;
  const errors = dryRunErrors(parsed.rules);
  return errors.length > 0
    ? { ok: false, errors: errors.map((e) => `would produce an invalid label: ${e}`) }
    : parsed;
}
