import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { NodeFacts } from '../kube/node-facts.js';
import { renderNodes } from './render.js';

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

const rows = [
  { context: 'west', node: node('gpu-07') },
  {
    context: 'east',
    node: node('gpu-02', { schedulable: false, inMaintenance: true, maintenance: 'ops/reboot' }),
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
  },
];

describe('renderNodes', () => {
  it('prints a table sorted by context and name, with CONTEXT for several contexts', () => {
    expect(renderNodes(rows, 'table', true)).toBe(
      [
        'CONTEXT   NAME     STATUS                TIER               GPU    GPUS   SCHEDULABLE   MAINTENANCE   AGENT',
        'east      cp-1     Ready,control-plane   -                  -      0      yes           no            unknown',
        'east      gpu-02   Ready                 high-performance   h100   8      no            ops/reboot    labeled',
        'west      gpu-07   Ready                 high-performance   h100   8      yes           no            labeled',
        '',
      ].join('\n'),
    );
    expect(renderNodes(rows.slice(0, 1), 'table', false)).toMatch(/^NAME +STATUS/);
  });

  it('prints JSON and YAML records', () => {
    const json = JSON.parse(renderNodes(rows, 'json', true)) as unknown[];
    expect(json[0]).toEqual({
      context: 'east',
      name: 'cp-1',
      ready: true,
      schedulable: true,
      inMaintenance: false,
      maintenance: null,
      controlPlane: true,
      tier: null,
      gpuSku: null,
      gpus: 0,
      agent: 'unknown',
    });
    expect(parse(renderNodes(rows, 'yaml', true))).toEqual(json);
  });
});
