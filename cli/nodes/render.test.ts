import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { NodeFacts, NodeHealth } from '../kube/node-facts.js';
import { renderNodes, type ContextNode } from './render.js';

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
  agent: 'labeled',
  selectedFor: undefined,
  gpusRequested: 0,
  gpuPods: 0,
  ...over,
});

const healthy: NodeHealth = {
  readyStatus: 'True',
  readyReason: 'KubeletReady',
  downSince: undefined,
  downtimeTaint: undefined,
  downtimeTaintedAt: undefined,
  gpuHealth: 'healthy',
  gpuHealthDetail: undefined,
  phase: undefined,
};

const now = new Date('2026-11-30T10:00:00Z');
const connected = {
  connectedAt: '2026-11-30T09:00:00.000Z',
  lastHeartbeat: '2026-11-30T09:59:58.000Z',
};

const rows: ContextNode[] = [
  { context: 'west', node: node('gpu-07'), health: healthy, agentLink: connected },
  {
    context: 'east',
    node: node('gpu-02', { schedulable: false, inMaintenance: true, maintenance: 'ops/reboot' }),
    health: { ...healthy, phase: 'Draining' },
    agentLink: null,
  },
  {
    context: 'east',
    node: node('cp-1', {
      tier: undefined,
      sku: undefined,
      gpus: 0,
      controlPlane: true,
      agent: 'unknown',
    }),
    health: { ...healthy, gpuHealth: undefined },
    agentLink: undefined,
  },
  {
    context: 'east',
    node: node('gpu-05', { ready: false }),
    health: {
      readyStatus: 'Unknown',
      readyReason: 'NodeStatusUnknown',
      downSince: '2026-11-30T09:48:00.000Z',
      downtimeTaint: 'noma.dev/unreachable:NoExecute',
      downtimeTaintedAt: '2026-11-30T09:58:00.000Z',
      gpuHealth: 'degraded',
      gpuHealthDetail: { expected: 8, answering: 7 },
      phase: undefined,
    },
    agentLink: null,
  },
];

describe('renderNodes', () => {
  it('prints a table sorted by context and name, with CONTEXT for several contexts', () => {
    expect(renderNodes(rows, 'table', true, now)).toBe(
      [
        'CONTEXT   NAME     STATUS                DOWN   DOWNTIME   TIER               GPU    GPUS   HEALTH     SCHEDULABLE   MAINTENANCE   PHASE      AGENT',
        'east      cp-1     Ready,control-plane   -      -          -                  -      0      -          yes           no            -          -',
        'east      gpu-02   Ready                 -      -          high-performance   h100   8      healthy    no            ops/reboot    Draining   no',
        'east      gpu-05   NotReady              12m    tainted    high-performance   h100   8      degraded   yes           no            -          no',
        'west      gpu-07   Ready                 -      -          high-performance   h100   8      healthy    yes           no            -          yes',
        '',
      ].join('\n'),
    );
    expect(renderNodes(rows.slice(0, 1), 'table', false, now)).toMatch(/^NAME +STATUS +DOWN/);
  });

  it('prints JSON and YAML records with every field, null where unknown', () => {
    const json = JSON.parse(renderNodes(rows, 'json', true, now)) as unknown[];
    expect(json[0]).toEqual({
      context: 'east',
      name: 'cp-1',
      ready: true,
      readyStatus: 'True',
      readyReason: 'KubeletReady',
      downSince: null,
      downtimeTaint: null,
      downtimeTaintedAt: null,
      schedulable: true,
      inMaintenance: false,
      maintenance: null,
      phase: null,
      controlPlane: true,
      tier: null,
      gpuSku: null,
      gpus: 0,
      gpuHealth: null,
      gpuHealthDetail: null,
      agent: 'unknown',
      agentConnected: null,
      agentConnectedAt: null,
      agentLastHeartbeat: null,
    });
    expect(json[1]).toMatchObject({
      maintenance: 'ops/reboot',
      phase: 'Draining',
      agentConnected: false,
    });
    expect(json[2]).toMatchObject({
      ready: false,
      readyStatus: 'Unknown',
      readyReason: 'NodeStatusUnknown',
      downSince: '2026-11-30T09:48:00.000Z',
      downtimeTaint: 'noma.dev/unreachable:NoExecute',
      downtimeTaintedAt: '2026-11-30T09:58:00.000Z',
      gpuHealth: 'degraded',
      gpuHealthDetail: { expected: 8, answering: 7 },
    });
    expect(json[3]).toMatchObject({
      agentConnected: true,
      agentConnectedAt: connected.connectedAt,
      agentLastHeartbeat: connected.lastHeartbeat,
    });
    expect(parse(renderNodes(rows, 'yaml', true, now))).toEqual(json);
  });

  it('-o wide adds the why and when: Ready reason, taint and link ages, GPU detail', () => {
    expect(renderNodes(rows, 'wide', false, now)).toBe(
      [
        'NAME     STATUS                DOWN   DOWNTIME   TIER               GPU    GPUS   HEALTH     SCHEDULABLE   MAINTENANCE   PHASE      AGENT   REASON              TAINTED   LABELS    CONNECTED   HEARTBEAT   GPU DETAIL',
        'cp-1     Ready,control-plane   -      -          -                  -      0      -          yes           no            -          -       KubeletReady        -         unknown   -           -           -',
        'gpu-02   Ready                 -      -          high-performance   h100   8      healthy    no            ops/reboot    Draining   no      KubeletReady        -         labeled   no          -           -',
        'gpu-05   NotReady              12m    tainted    high-performance   h100   8      degraded   yes           no            -          no      NodeStatusUnknown   2m        labeled   no          -           {"expected":8,"answering":7}',
        'gpu-07   Ready                 -      -          high-performance   h100   8      healthy    yes           no            -          yes     KubeletReady        -         labeled   1h          2s          -',
        '',
      ].join('\n'),
    );
  });
});
