import type { V1Node, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { nodeFacts, podGpus, podsByNode } from './node-facts.js';

const gpuPod = (node: string, gpus: string, phase = 'Running'): V1Pod => ({
  spec: {
    nodeName: node,
    containers: [{ name: 'c', resources: { limits: { 'nvidia.com/gpu': gpus } } }],
  },
  status: { phase },
});

describe('podGpus', () => {
  it('sums app containers, takes a limit alone as the request, counts MIG slices', () => {
    const pod: V1Pod = {
      spec: {
        containers: [
          {
            name: 'a',
            resources: { requests: { 'nvidia.com/gpu': '2' }, limits: { 'nvidia.com/gpu': '2' } },
          },
          { name: 'b', resources: { limits: { 'nvidia.com/mig-1g.10gb': '1', cpu: '4' } } },
          { name: 'c' },
        ],
      },
    };
    expect(podGpus(pod)).toBe(3);
  });

  it('uses the largest init container when it needs more than the app', () => {
    const pod: V1Pod = {
      spec: {
        initContainers: [{ name: 'i', resources: { limits: { 'nvidia.com/gpu': '4' } } }],
        containers: [{ name: 'a', resources: { limits: { 'nvidia.com/gpu': '1' } } }],
      },
    };
    expect(podGpus(pod)).toBe(4);
  });
});

describe('nodeFacts', () => {
  const node: V1Node = {
    metadata: {
      name: 'gpu-01',
      labels: {
        'hardware.tier': 'high-performance',
        'gpu.h100': 'true',
        'gpu.count': '8',
        'gpu.nvidia.present': 'true',
        'noma.dev/selected-for': 'other',
      },
      annotations: { 'noma.dev/managed-labels': 'gpu.count,gpu.h100' },
    },
    spec: { unschedulable: true, taints: [{ key: 'noma.dev/maintenance', effect: 'NoSchedule' }] },
    status: {
      capacity: { 'nvidia.com/gpu': '8' },
      conditions: [{ type: 'Ready', status: 'True' }],
    },
  };

  it('reads tier, SKU, GPU count, state and what its live pods hold', () => {
    const pods = [
      gpuPod('gpu-01', '2'),
      gpuPod('gpu-01', '1', 'Pending'),
      gpuPod('gpu-01', '4', 'Succeeded'),
    ];
    expect(nodeFacts(node, pods)).toEqual({
      name: 'gpu-01',
      tier: 'high-performance',
      sku: 'h100',
      gpus: 8,
      ready: true,
      schedulable: false,
      inMaintenance: true,
      maintenance: undefined,
      controlPlane: false,
      agent: 'labeled',
      selectedFor: 'other',
      gpusRequested: 3,
      gpuPods: 2,
    });
  });

  it('knows little about a bare control-plane node', () => {
    const facts = nodeFacts({
      metadata: { name: 'cp', labels: { 'node-role.kubernetes.io/control-plane': '' } },
      status: { conditions: [{ type: 'Ready', status: 'False' }] },
    });
    expect(facts).toMatchObject({
      gpus: 0,
      tier: undefined,
      sku: undefined,
      ready: false,
      schedulable: true,
      controlPlane: true,
      agent: 'unknown',
    });
  });

  it("names the maintenance a node is in, from the coordinator's annotation or label", () => {
    const annotated = nodeFacts({
      metadata: { name: 'n', annotations: { 'noma.dev/maintenance': 'gpu-ops/reboot' } },
    });
    expect(annotated).toMatchObject({ inMaintenance: true, maintenance: 'gpu-ops/reboot' });
    const labeled = nodeFacts({
      metadata: { name: 'n', labels: { 'noma.dev/maintenance': 'reboot' } },
    });
    expect(labeled).toMatchObject({ inMaintenance: true, maintenance: 'reboot' });
  });

  it('falls back to the GPU count label and the product label', () => {
    const facts = nodeFacts({
      metadata: {
        name: 'n',
        labels: { 'noma.dev/gpu.count': '2', 'noma.dev/gpu.product': 'NVIDIA-L4' },
      },
    });
    expect(facts).toMatchObject({ gpus: 2, sku: 'NVIDIA-L4' });
  });
});

describe('podsByNode', () => {
  it('groups bound pods and skips unbound ones', () => {
    const map = podsByNode([
      gpuPod('a', '1'),
      gpuPod('b', '1'),
      gpuPod('a', '2'),
      { spec: { containers: [] } },
    ]);
    expect([...map.keys()].sort()).toEqual(['a', 'b']);
    expect(map.get('a')).toHaveLength(2);
  });
});
