import type { V1Node, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { nodeFacts, nodeHealth, parseAgents, podGpus, podsByNode } from './node-facts.js';

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

  it('names the maintenance from the claim annotation first', () => {
    const claimed = nodeFacts({
      metadata: {
        name: 'n',
        annotations: {
          'noma.dev/claim': '{"maintenance":"ops/fix","uid":"u1","phase":"Draining"}',
          'noma.dev/maintenance': 'ops/older',
        },
      },
    });
    expect(claimed).toMatchObject({ inMaintenance: true, maintenance: 'ops/fix' });
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

describe('nodeHealth', () => {
  const down = new Date('2026-11-30T09:48:00Z');
  const cases: { name: string; node: V1Node; want: Partial<ReturnType<typeof nodeHealth>> }[] = [
    {
      name: 'a Ready node: not down, nothing known beyond Ready',
      node: {
        metadata: { name: 'n' },
        status: {
          conditions: [
            { type: 'Ready', status: 'True', reason: 'KubeletReady', lastTransitionTime: down },
          ],
        },
      },
      want: {
        readyStatus: 'True',
        readyReason: 'KubeletReady',
        downSince: undefined,
        downtimeTaint: undefined,
        gpuHealth: undefined,
        phase: undefined,
      },
    },
    {
      name: 'a NotReady node is down since the condition last changed',
      node: {
        metadata: { name: 'n' },
        status: { conditions: [{ type: 'Ready', status: 'False', lastTransitionTime: down }] },
      },
      want: { readyStatus: 'False', downSince: '2026-11-30T09:48:00.000Z' },
    },
    {
      name: 'an Unknown node (kubelet stopped posting) is down too',
      node: {
        metadata: { name: 'n' },
        status: {
          conditions: [
            {
              type: 'Ready',
              status: 'Unknown',
              reason: 'NodeStatusUnknown',
              lastTransitionTime: down,
            },
          ],
        },
      },
      want: { readyStatus: 'Unknown', downSince: '2026-11-30T09:48:00.000Z' },
    },
    {
      name: 'a node without a Ready condition has no down time to show',
      node: { metadata: { name: 'n' } },
      want: { readyStatus: undefined, downSince: undefined },
    },
    {
      name: 'the downtime taint by its default key, with value and effect',
      node: {
        metadata: { name: 'n' },
        spec: {
          taints: [
            { key: 'noma.dev/maintenance', effect: 'NoSchedule' },
            { key: 'noma.dev/unreachable', effect: 'NoExecute' },
          ],
        },
      },
      want: { downtimeTaint: 'noma.dev/unreachable:NoExecute' },
    },
    {
      name: 'GPU health from its label, phase from the claim',
      node: {
        metadata: {
          name: 'n',
          labels: { 'noma.dev/gpu.health': 'degraded' },
          annotations: {
            'noma.dev/claim': '{"maintenance":"ops/fix","uid":"u1","phase":"Draining"}',
          },
        },
      },
      want: { gpuHealth: 'degraded', phase: 'Draining' },
    },
    {
      name: 'a claim that does not parse is no claim',
      node: { metadata: { name: 'n', annotations: { 'noma.dev/claim': '{not json' } } },
      want: { phase: undefined },
    },
    {
      name: 'a claim without a phase has none',
      node: {
        metadata: {
          name: 'n',
          annotations: { 'noma.dev/claim': '{"maintenance":"a/b","uid":"u"}' },
        },
      },
      want: { phase: undefined },
    },
  ];
  it.each(cases)('$name', ({ node, want }) => {
    expect(nodeHealth(node)).toMatchObject(want);
  });

  const runai = { key: 'runai', value: 'drain', effect: 'NoExecute' };
  const record = JSON.stringify({
    taint: runai,
    downSince: '2026-11-30T09:48:00Z',
    taintedAt: '2026-11-30T09:58:00Z',
    agent: true,
  });
  it.each([
    {
      name: "the coordinator's record names a configured taint, and when it was added",
      taints: [runai, { key: 'noma.dev/unreachable', effect: 'NoExecute' }],
      want: { downtimeTaint: 'runai=drain:NoExecute', downtimeTaintedAt: '2026-11-30T09:58:00Z' },
    },
    {
      name: 'a record whose taint someone removed: no taint',
      taints: [{ key: 'runai', value: 'drain', effect: 'NoSchedule' }],
      want: { downtimeTaint: undefined, downtimeTaintedAt: undefined },
    },
  ])('$name', ({ taints, want }) => {
    const node: V1Node = {
      metadata: { name: 'n', annotations: { 'noma.dev/unplanned-downtime': record } },
      spec: { taints },
    };
    expect(nodeHealth(node)).toMatchObject(want);
  });

  it('without a record, another key is not the downtime taint', () => {
    const node: V1Node = { metadata: { name: 'n' }, spec: { taints: [runai] } };
    expect(nodeHealth(node).downtimeTaint).toBeUndefined();
  });

  it("keeps the agent's GPU health detail, parsed when it is JSON", () => {
    const detail = (text: string) =>
      nodeHealth({
        metadata: { name: 'n', annotations: { 'noma.dev/gpu.health-detail': text } },
      }).gpuHealthDetail;
    expect(detail('{"expected":8,"answering":7}')).toEqual({ expected: 8, answering: 7 });
    expect(detail('7 of 8 GPUs answer')).toBe('7 of 8 GPUs answer');
  });
});

describe('parseAgents', () => {
  it("maps the coordinator's /agents answer by node", () => {
    const body = {
      agents: [
        {
          node: 'gpu-01',
          version: '0.1.0',
          bootID: 'b',
          inventory: null,
          connectedAt: '2026-11-30T09:00:00.000Z',
          lastHeartbeat: '2026-11-30T09:59:58.000Z',
          remote: '10.0.0.1',
          running: {},
        },
        { node: 'gpu-02' },
        { node: '' },
        { version: 'no node' },
        'junk',
        null,
      ],
    };
    const map = parseAgents(body);
    expect([...(map?.keys() ?? [])]).toEqual(['gpu-01', 'gpu-02']);
    expect(map?.get('gpu-01')).toEqual({
      connectedAt: '2026-11-30T09:00:00.000Z',
      lastHeartbeat: '2026-11-30T09:59:58.000Z',
    });
    expect(map?.get('gpu-02')).toEqual({ connectedAt: undefined, lastHeartbeat: undefined });
  });

  it('an empty list is "none connected"; another shape is "unknown"', () => {
    expect(parseAgents({ agents: [] })?.size).toBe(0);
    for (const body of [null, undefined, 'text', [], {}, { agents: {} }]) {
      expect(parseAgents(body)).toBeUndefined();
    }
  });
});
