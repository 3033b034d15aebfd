import { describe, expect, it } from 'vitest';
import { MANAGED_LABELS_ANNOTATION as OWNED } from '../../shared/labels.js';
import { parseOwnedAnnotation, planLabels } from './plan.js';

const foreign = { 'kubernetes.io/hostname': 'n1', team: 'ml' };

describe('planLabels', () => {
  it('on a fresh node sets every label and records ownership', () => {
    const plan = planLabels({
      node: { labels: foreign, annotations: {} },
      desired: { 'gpu.count': '2', 'nvidia.com/gpu': 'true' },
      lastApplied: {},
    });
    expect(plan.patch).toEqual({
      metadata: {
        labels: { 'gpu.count': '2', 'nvidia.com/gpu': 'true' },
        annotations: { [OWNED]: 'gpu.count,nvidia.com/gpu' },
      },
    });
    expect(plan.restored).toEqual([]);
  });

  it('does nothing when the node is already as desired', () => {
    const plan = planLabels({
      node: { labels: { ...foreign, 'gpu.count': '2' }, annotations: { [OWNED]: 'gpu.count' } },
      desired: { 'gpu.count': '2' },
      lastApplied: { 'gpu.count': '2' },
    });
    expect(plan.patch).toBeUndefined();
  });

  it('removes only keys it owned and no longer produces (a GPU pulled out)', () => {
    const plan = planLabels({
      node: {
        labels: { ...foreign, 'gpu.count': '2', 'gpu.rtx5070': 'true', 'gpu.rtx3050': 'true' },
        annotations: { [OWNED]: 'gpu.count,gpu.rtx3050,gpu.rtx5070' },
      },
      desired: { 'gpu.count': '1', 'gpu.rtx5070': 'true' },
      lastApplied: { 'gpu.count': '2', 'gpu.rtx5070': 'true', 'gpu.rtx3050': 'true' },
    });
    expect(plan.remove).toEqual(['gpu.rtx3050']);
    expect(plan.patch).toEqual({
      metadata: {
        labels: { 'gpu.count': '1', 'gpu.rtx3050': null },
        annotations: { [OWNED]: 'gpu.count,gpu.rtx5070' },
      },
    });
    // A changed inventory is an update, not a restore.
    expect(plan.restored).toEqual([]);
  });

  it('never removes a label it did not own, even one that looks like ours', () => {
    const plan = planLabels({
      node: {
        labels: { 'gpu.h100': 'true', 'gpu.count': '1' },
        annotations: { [OWNED]: 'gpu.count' },
      },
      desired: {},
      lastApplied: {},
    });
    expect(plan.remove).toEqual(['gpu.count']);
    expect(plan.patch?.metadata.labels).toEqual({ 'gpu.count': null });
    expect(plan.patch?.metadata.annotations).toEqual({ [OWNED]: null });
  });

  it('puts back a label someone removed or changed, and says so', () => {
    const plan = planLabels({
      node: {
        labels: { 'gpu.count': '3' },
        annotations: { [OWNED]: 'gpu.count,nvidia.com/gpu' },
      },
      desired: { 'gpu.count': '2', 'nvidia.com/gpu': 'true' },
      lastApplied: { 'gpu.count': '2', 'nvidia.com/gpu': 'true' },
    });
    expect(plan.set).toEqual({ 'gpu.count': '2', 'nvidia.com/gpu': 'true' });
    expect(plan.restored).toEqual(['gpu.count', 'nvidia.com/gpu']);
    expect(plan.patch?.metadata.annotations).toBeUndefined();
  });

  it('rewrites the ownership annotation when someone deleted it', () => {
    const plan = planLabels({
      node: { labels: { 'gpu.count': '2', 'gpu.l4': 'true' }, annotations: {} },
      desired: { 'gpu.count': '2' },
      lastApplied: { 'gpu.count': '2', 'gpu.l4': 'true' },
      ownedInMemory: ['gpu.count', 'gpu.l4'],
    });
    expect(plan.patch).toEqual({
      metadata: { labels: { 'gpu.l4': null }, annotations: { [OWNED]: 'gpu.count' } },
    });
  });

  it('takes over a pre-existing label with the same key as one of ours', () => {
    const plan = planLabels({
      node: { labels: { 'hardware.tier': 'legacy' }, annotations: {} },
      desired: { 'hardware.tier': 'standard' },
      lastApplied: {},
    });
    expect(plan.set).toEqual({ 'hardware.tier': 'standard' });
  });
});

describe('parseOwnedAnnotation', () => {
  it.each([
    [undefined, []],
    ['', []],
    ['a,b', ['a', 'b']],
    [' a , ,b ', ['a', 'b']],
  ])('%j → %j', (value, keys) => {
    expect(parseOwnedAnnotation(value)).toEqual(keys);
  });

  it('keeps the annotations it is given and removes those set to null, touching no other', () => {
    const node = {
      labels: { 'gpu.count': '8' },
      annotations: {
        [OWNED]: 'gpu.count',
        'noma.dev/accept-inventory': '7',
        'noma.dev/gpu.health-detail': '{"old":1}',
        'someone/else': 'x',
      },
    };
    const plan = planLabels({
      node,
      desired: { 'gpu.count': '8' },
      lastApplied: {},
      annotations: {
        'noma.dev/gpu.health-detail': '{"expected":8}',
        'noma.dev/accept-inventory': null,
        'noma.dev/absent': null,
      },
    });
    expect(plan.patch).toEqual({
      metadata: {
        annotations: {
          'noma.dev/gpu.health-detail': '{"expected":8}',
          'noma.dev/accept-inventory': null,
        },
      },
    });
    const settled = planLabels({
      node: { ...node, annotations: { [OWNED]: 'gpu.count', 'noma.dev/gpu.health-detail': 'd' } },
      desired: { 'gpu.count': '8' },
      lastApplied: {},
      annotations: { 'noma.dev/gpu.health-detail': 'd', 'noma.dev/accept-inventory': null },
    });
    expect(settled.patch).toBeUndefined();
  });
});
