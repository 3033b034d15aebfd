// The coordinator's registry as a leader and as a standby: the fleet gauges come from the
// leader's Node cache only, so summing the replicas counts each node once.
import type { V1Node } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { createMetrics } from './metrics.js';

const node = (name: string, labels: Record<string, string>): V1Node => ({
  metadata: { name, labels, annotations: { 'noma.dev/managed-labels': 'hardware.tier' } },
  status: { conditions: [{ type: 'Ready', status: 'True' }] },
});

const NODES = [
  node('gpu-1', {
    'hardware.tier': 'high-performance',
    'noma.dev/gpu.product': 'NVIDIA-H100-80GB-HBM3',
    'noma.dev/gpu.health': 'degraded',
  }),
  node('gpu-2', { 'noma.dev/gpu.product': 'NVIDIA-H100-80GB-HBM3' }),
];

/** The exposition lines of `names`, comments left out. */
async function samples(
  registry: ReturnType<typeof createMetrics>['registry'],
  names: readonly string[],
) {
  const text = await registry.metrics();
  return text
    .split('\n')
    .filter(
      (l) =>
        !l.startsWith('#') && names.some((n) => l.startsWith(`${n}{`) || l.startsWith(`${n} `)),
    )
    .sort();
}

const FLEET = [
  'noma_leader',
  'noma_nodes',
  'noma_nodes_missing_labels',
  'noma_nodes_gpu_health',
  'noma_agents_disconnected',
  'noma_maintenance_phase',
  'noma_drain_blocked_seconds',
  'noma_node_stuck_seconds',
];

describe('coordinator metrics', () => {
  it('the leader shows the fleet from its Node cache and link', async () => {
    const { registry } = createMetrics(() => undefined, {
      isLeader: () => true,
      identity: 'coord-a',
      nodes: () => ({ list: () => NODES }),
      link: () => ({ isConnected: (n) => n === 'gpu-2' }),
      tierLabel: 'hardware.tier',
    });
    expect(await samples(registry, FLEET)).toEqual(
      [
        'noma_agents_disconnected 1',
        'noma_leader{identity="coord-a"} 1',
        'noma_nodes{tier="high-performance",gpu_sku="h100"} 1',
        'noma_nodes{tier="",gpu_sku="h100"} 1',
        'noma_nodes_gpu_health{health="degraded"} 1',
        'noma_nodes_gpu_health{health="healthy"} 0',
        'noma_nodes_gpu_health{health="none"} 1',
        'noma_nodes_gpu_health{health="unknown"} 0',
        'noma_nodes_missing_labels{label="hardware.tier"} 1',
      ].sort(),
    );
  });

  it('a standby (no Node cache, no link) shows noma_leader 0 and no fleet series', async () => {
    const { registry } = createMetrics(() => undefined, {
      isLeader: () => false,
      identity: 'coord-b',
      nodes: () => undefined,
      link: () => undefined,
      tierLabel: 'hardware.tier',
    });
    expect(await samples(registry, FLEET)).toEqual([
      'noma_agents_disconnected 0',
      'noma_leader{identity="coord-b"} 0',
    ]);
  });

  it('without --tier-label ("" : no tiers) there is no missing-label series', async () => {
    const { registry } = createMetrics(() => undefined, {
      isLeader: () => true,
      nodes: () => ({ list: () => NODES }),
      tierLabel: '',
    });
    const lines = await samples(registry, ['noma_nodes_missing_labels', 'noma_nodes']);
    expect(lines).toEqual(['noma_nodes{tier="",gpu_sku="h100"} 2']);
  });
});
