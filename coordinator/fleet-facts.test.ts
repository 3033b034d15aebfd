import type { V1Node } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { NodeMaintenanceStatus } from '../shared/api/index.js';
import {
  fleetFacts,
  gpuHealthOf,
  gpuSkuOf,
  maintenanceFacts,
  MAX_STUCK_SERIES,
  MAX_TIER_SKU_SERIES,
  type RunView,
} from './fleet-facts.js';

const TIER = 'hardware.tier';

function node(
  name: string,
  labels: Record<string, string> = {},
  opts: { ready?: boolean; agentLabeled?: boolean } = {},
): V1Node {
  return {
    metadata: {
      name,
      labels,
      annotations: opts.agentLabeled === true ? { 'noma.dev/managed-labels': TIER } : {},
    },
    status: { conditions: [{ type: 'Ready', status: opts.ready === false ? 'False' : 'True' }] },
  };
}

describe('gpuSkuOf and gpuHealthOf', () => {
  it.each([
    [{ 'noma.dev/gpu.product': 'NVIDIA-H100-80GB-HBM3' }, 'h100'],
    [{ 'noma.dev/gpu.product': 'NVIDIA-GeForce-RTX-5070' }, 'rtx5070'],
    [{ 'noma.dev/gpu.product': 'NVIDIA-A100-SXM4-40GB' }, 'a100'],
    [{ 'noma.dev/gpu.product': 'mixed' }, 'mixed'],
    [{ 'noma.dev/gpu.product': '' }, 'none'],
    [{}, 'none'],
  ])('%j → gpu_sku %s', (labels, sku) => {
    expect(gpuSkuOf(labels)).toBe(sku);
  });

  it.each([
    [{ 'noma.dev/gpu.health': 'healthy' }, 'healthy'],
    [{ 'noma.dev/gpu.health': 'degraded' }, 'degraded'],
    [{ 'noma.dev/gpu.health': 'on-fire' }, 'unknown'],
    [{}, 'none'],
  ])('%j → health %s', (labels, health) => {
    expect(gpuHealthOf(labels)).toBe(health);
  });
});

describe('fleetFacts', () => {
  const h100 = { [TIER]: 'high-performance', 'noma.dev/gpu.product': 'NVIDIA-H100-80GB-HBM3' };
  const fleet = [
    node('gpu-1', { ...h100, 'noma.dev/gpu.health': 'healthy' }, { agentLabeled: true }),
    node('gpu-2', { ...h100, 'noma.dev/gpu.health': 'degraded' }, { agentLabeled: true }),
    node('cpu-1', { [TIER]: 'standard' }, { agentLabeled: true }),
    node('new-1'), // no agent yet: no tier, no annotation
    node('down-1', { [TIER]: '' }, { agentLabeled: true, ready: false }),
  ];

  it('counts nodes by tier and SKU, the missing tier labels and GPU health', () => {
    const f = fleetFacts(fleet, { tierLabel: TIER });
    expect(f.byTierSku).toEqual([
      { tier: '', gpuSku: 'none', nodes: 2 },
      { tier: 'high-performance', gpuSku: 'h100', nodes: 2 },
      { tier: 'standard', gpuSku: 'none', nodes: 1 },
    ]);
    expect(f.missingTier).toBe(2);
    expect(f.gpuHealth).toEqual({ healthy: 1, degraded: 1, unknown: 0, none: 3 });
  });

  it('counts Ready nodes an agent labeled whose agent is not connected; none without a link', () => {
    const connected = new Set(['gpu-1']);
    const f = fleetFacts(fleet, { tierLabel: TIER, isConnected: (n) => connected.has(n) });
    // gpu-2 and cpu-1: labeled, Ready, not connected. new-1 never had an agent; down-1 is down.
    expect(f.agentsDisconnected).toBe(2);
    expect(fleetFacts(fleet, { tierLabel: TIER }).agentsDisconnected).toBeUndefined();
  });

  it('has no missing-label count when the rules have no tiers', () => {
    const f = fleetFacts(fleet, { tierLabel: '' });
    expect(f.missingTier).toBeUndefined();
    expect(f.byTierSku.every((c) => c.tier === '')).toBe(true);
  });

  it(`keeps at most ${MAX_TIER_SKU_SERIES} (tier, SKU) series, the smallest folded into other`, () => {
    const many = Array.from({ length: 200 }, (_, i) =>
      node(`n-${i}`, { [TIER]: `t${i % 100}`, 'noma.dev/gpu.product': i < 10 ? 'H100' : 'L4' }),
    );
    const f = fleetFacts(many, { tierLabel: TIER });
    expect(f.byTierSku).toHaveLength(MAX_TIER_SKU_SERIES);
    expect(f.byTierSku.reduce((n, c) => n + c.nodes, 0)).toBe(200);
    expect(f.byTierSku.at(-1)).toMatchObject({ tier: 'other', gpuSku: 'other' });
  });
});

describe('maintenanceFacts', () => {
  const now = Date.parse('2026-01-01T12:00:00Z');
  const ago = (s: number) => new Date(now - s * 1000).toISOString();
  const pdb = { kind: 'PodDisruptionBudget', namespace: 'web', name: 'web' };
  const run = (key: string, status: NodeMaintenanceStatus, stuck: RunView['stuck'] = []) => ({
    key,
    status,
    stuck,
  });

  it('lists maintenances in progress with their phase, not finished ones', () => {
    const f = maintenanceFacts(
      [
        run('gpu/b', { phase: 'Halted' }),
        run('gpu/a', { phase: 'Running' }),
        run('gpu/done', { phase: 'Completed' }),
        run('gpu/bad', { phase: 'Failed' }),
        run('gpu/new', {}),
      ],
      now,
    );
    expect(f.active).toEqual([
      { maintenance: 'gpu/a', phase: 'Running' },
      { maintenance: 'gpu/b', phase: 'Halted' },
      { maintenance: 'gpu/new', phase: 'Pending' },
    ]);
  });

  it('gives per maintenance the longest drain that is blocked now', () => {
    const f = maintenanceFacts(
      [
        run('gpu/a', {
          phase: 'Running',
          nodes: [
            { name: 'n1', phase: 'Draining', lastTransitionTime: ago(600), drain: d(pdb) },
            { name: 'n2', phase: 'Draining', lastTransitionTime: ago(2400), drain: d(pdb) },
            // Draining for longer, but nothing blocks it now.
            { name: 'n3', phase: 'Draining', lastTransitionTime: ago(9000), drain: d() },
            // Blocked once, drained since: not Draining.
            { name: 'n4', phase: 'Drained', lastTransitionTime: ago(9000), drain: d(pdb) },
          ],
        }),
        run('gpu/b', {
          phase: 'Running',
          nodes: [{ name: 'm1', phase: 'Draining', lastTransitionTime: ago(60), drain: d() }],
        }),
      ],
      now,
    );
    expect(f.drainBlocked).toEqual([{ maintenance: 'gpu/a', seconds: 2400 }]);
  });

  it(`names the ${MAX_STUCK_SERIES} longest stuck nodes`, () => {
    const stuck = Array.from({ length: 30 }, (_, i) => ({
      name: `n-${String(i).padStart(2, '0')}`,
      phase: 'Draining' as const,
      since: ago(100 * (i + 1)),
      reason: 'Draining for long',
    }));
    const f = maintenanceFacts([run('gpu/a', { phase: 'Running' }, stuck)], now);
    expect(f.stuck).toHaveLength(MAX_STUCK_SERIES);
    expect(f.stuck[0]).toEqual({
      maintenance: 'gpu/a',
      node: 'n-29',
      phase: 'Draining',
      seconds: 3000,
    });
    expect(f.stuck.at(-1)?.node).toBe('n-10');
  });
});

function d(blockedBy?: { kind: string; namespace: string; name: string }) {
  return { total: 2, evicted: 1, pending: 1, ...(blockedBy === undefined ? {} : { blockedBy }) };
}
