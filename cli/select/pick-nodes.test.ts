import { describe, expect, it } from 'vitest';
import type { NodeFacts } from '../kube/node-facts.js';
import { pickNodes, rankNodes } from './pick-nodes.js';
import { renderRanking } from './render.js';

const node = (name: string, over: Partial<NodeFacts> = {}): NodeFacts => ({
  name,
  tier: 'high-performance',
  sku: 'h100',
  gpus: 8,
  ready: true,
  schedulable: true,
  inMaintenance: false,
  maintenance: undefined,
  controlPlane: false,
  agent: 'unknown',
  selectedFor: undefined,
  gpusRequested: 0,
  gpuPods: 0,
  ...over,
});

const fleet = [
  node('gpu-05', { gpusRequested: 8 }),
  node('gpu-04', { gpusRequested: 2 }),
  node('gpu-03'),
  node('gpu-02', { gpusRequested: 2 }),
  node('gpu-01', { gpusRequested: 0, selectedFor: 'other-maintenance' }),
  node('gpu-06', { schedulable: false }),
  node('gpu-07', { ready: false }),
  node('gpu-08', { inMaintenance: true }),
  node('cp-1', { controlPlane: true, gpus: 8 }),
  node('cpu-1', { gpus: 0 }),
];

describe('pickNodes', () => {
  it('picks the nodes with the fewest GPUs requested, ties by name', () => {
    const pick = pickNodes(fleet, 3, 'free-3');
    expect(pick.ok && pick.chosen.map((n) => n.name)).toEqual(['gpu-03', 'gpu-02', 'gpu-04']);
  });

  it('takes nodes reserved by another maintenance last, its own reservation like no reservation', () => {
    expect(rankNodes(fleet, 'free-3').ranked.map((r) => r.node.name)).toEqual([
      'gpu-03',
      'gpu-02',
      'gpu-04',
      'gpu-05',
      'gpu-01',
    ]);
    expect(rankNodes(fleet, 'other-maintenance').ranked[0]?.node.name).toBe('gpu-01');
  });

  it('never picks cordoned, NotReady, in-maintenance, control-plane or GPU-less nodes', () => {
    const { excluded } = rankNodes(fleet, 'x');
    expect(excluded.map((e) => [e.node.name, e.reason])).toEqual([
      ['cp-1', 'control plane'],
      ['cpu-1', 'no GPUs'],
      ['gpu-06', 'cordoned'],
      ['gpu-07', 'not Ready'],
      ['gpu-08', 'in maintenance'],
    ]);
  });

  it('refuses to pick fewer than asked', () => {
    const pick = pickNodes(fleet, 6, 'x');
    expect(pick.ok).toBe(false);
    expect(!pick.ok && pick.message).toBe('only 5 GPU node(s) are available, 6 requested');
  });

  it('renders the choice with reasons', () => {
    const pick = pickNodes(fleet, 2, 'x');
    const text = renderRanking(pick.ranking, 2);
    expect(text).toMatch(/^gpu-03 +picked +8 +0 +0\/8 GPUs requested$/m);
    expect(text).toMatch(/^gpu-04 +candidate /m);
    expect(text).toMatch(/^gpu-01 +candidate .*already selected for other-maintenance$/m);
    expect(text).toMatch(/^gpu-08 +skipped .*in maintenance$/m);
  });
});
