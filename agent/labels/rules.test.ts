import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dryRunErrors, loadRules } from './load-rules.js';
import { DEFAULT_RULES, parseRules } from './rules.js';

describe('parseRules', () => {
  it('an empty file means the defaults', () => {
    expect(parseRules('')).toEqual({ ok: true, rules: DEFAULT_RULES });
  });

  it('a field in the file replaces that default only', () => {
    const result = parseRules('countLabel: example.com/gpus\n');
    expect(result.ok && result.rules).toEqual({ ...DEFAULT_RULES, countLabel: 'example.com/gpus' });
  });

  it('reads JSON as well as YAML', () => {
    const result = parseRules('{"nomaLabels": false}');
    expect(result.ok && result.rules.nomaLabels).toBe(false);
  });

  it.each([
    { what: 'broken YAML', text: 'tier: [', error: /not valid YAML\/JSON/ },
    { what: 'a misspelt field', text: 'gpuLabel: {}', error: /\(root\)|gpuLabel/ },
    { what: 'a wrong type', text: 'nomaLabels: "yes"', error: /nomaLabels/ },
    {
      what: 'an invalid label key',
      text: 'gpuLabels: {"Bad Key!": "true"}',
      error: /gpuLabels: label key "Bad Key!" name part must/,
    },
    {
      what: 'an invalid label value',
      text: 'gpuLabels: {accelerator: "nvidia gpu"}',
      error: /gpuLabels.accelerator: label value "nvidia gpu"/,
    },
    {
      what: 'a value longer than 63 characters',
      text: `gpuLabels: {accelerator: ${'a'.repeat(64)}}`,
      error: /at most 63 characters/,
    },
    {
      what: 'a key in a Kubernetes namespace',
      text: 'gpuLabels: {"kubernetes.io/hostname": "x"}',
      error: /reserved for Kubernetes/,
    },
    {
      what: 'a tier value that is no label value',
      text: 'tier: {label: hardware.tier, default: "not ok", rules: []}',
      error: /tier: label value "not ok"/,
    },
    {
      what: 'tier labels for a tier that does not exist',
      text: 'tierLabels: {high-perf: {voice-pipeline: enabled}}',
      error: /tierLabels.high-perf: no such tier/,
    },
    {
      what: 'a tier rule without a condition',
      text: 'tier: {label: t, default: s, rules: [{value: big}]}',
      error: /tier.rules\[0\] \("big"\): needs at least one of/,
    },
    {
      what: 'a SKU prefix that cannot make a key',
      text: 'skuLabel: {prefix: "Gpu Model/", value: "true"}',
      error: /skuLabel.prefix/,
    },
    {
      what: 'two rules producing the same key',
      text: 'countLabel: accelerator',
      error: /"accelerator" is produced by two rules/,
    },
    {
      what: 'an alias SKU that is not lowercase alphanumeric',
      text: 'skuAliases: [{product: "*", sku: "RTX 6000"}]',
      error: /skuAliases\[0\].sku/,
    },
  ])('rejects $what', ({ text, error }) => {
    const result = parseRules(text);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.errors.join('\n')).toMatch(error);
  });
});

describe('dryRunErrors', () => {
  it('finds nothing wrong with the defaults', () => {
    expect(dryRunErrors(DEFAULT_RULES)).toEqual([]);
  });

  it('accepts a long SKU prefix because produced SKU keys are cut to fit', () => {
    const prefix = `example.com/${'g'.repeat(62)}`;
    const result = parseRules(`skuLabel: {prefix: "${prefix}", value: "true"}`);
    expect(result.ok).toBe(true);
    if (result.ok) expect(dryRunErrors(result.rules)).toEqual([]);
  });

  it('reports a label the rules would produce invalid', () => {
    // Bypasses parseRules, as a future rule kind without a static check would.
    const rules = { ...DEFAULT_RULES, countLabel: 'Not A Key' };
    expect(dryRunErrors(rules)).toContain(
      'key "Not A Key": name part must be empty or consist of alphanumerics, "-", "_" or "." and start and end with an alphanumeric',
    );
  });
});

describe('loadRules', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'noma-rules-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('without a path gives the defaults', async () => {
    expect(await loadRules(undefined)).toEqual({ ok: true, rules: DEFAULT_RULES });
  });

  it('names a file it cannot read', async () => {
    const result = await loadRules(join(dir, 'missing.yaml'));
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.errors[0]).toMatch(/cannot read .*missing.yaml: ENOENT/);
  });

  it('reads a valid file', async () => {
    const path = join(dir, 'rules.yaml');
    await writeFile(path, 'tierLabels: {dual-gpu: {voice-pipeline: enabled}}\n');
    const result = await loadRules(path);
    expect(result.ok && result.rules.tierLabels).toEqual({
      'dual-gpu': { 'voice-pipeline': 'enabled' },
    });
  });
});
