import { describe, expect, it } from 'vitest';
import type { NodeStatus } from '../../shared/api/index.js';
import { STATUS_TAIL_BYTES } from '../../shared/protocol.js';
import { compactStatus, STATUS_TAILS_BUDGET_BYTES, tailLimit } from './status-store.js';

const node = (i: number, extra: Partial<NodeStatus> = {}): NodeStatus => ({
  name: `gpu-${String(i).padStart(4, '0')}`,
  phase: 'Succeeded',
  ...extra,
});

describe('tailLimit', () => {
  it('keeps the full tail for small maintenances', () => {
    expect(tailLimit(1)).toBe(STATUS_TAIL_BYTES);
    expect(tailLimit(64)).toBe(STATUS_TAIL_BYTES);
  });
  it('shares the budget among many nodes, with a floor', () => {
    expect(tailLimit(2000)).toBe(Math.floor(STATUS_TAILS_BUDGET_BYTES / 2000));
    expect(tailLimit(100_000)).toBe(64);
  });
});

describe('compactStatus', () => {
  it('leaves out a drain of no pods and empty initial taints', () => {
    const s = compactStatus({
      nodes: [
        node(1, {
          drain: { total: 0, evicted: 0, pending: 0 },
          initialState: { unschedulable: true, taints: [] },
        }),
      ],
    });
    expect(s.nodes?.[0]).toEqual({
      name: 'gpu-0001',
      phase: 'Succeeded',
      initialState: { unschedulable: true },
    });
  });

  it('keeps a drain that counted pods or is blocked, and taints that were there', () => {
    const blocked = { kind: 'PodDisruptionBudget', namespace: 'a', name: 'pdb' };
    const taints = [{ key: 'k', effect: 'NoSchedule' }];
    const nodes = [
      node(1, { drain: { total: 3, evicted: 3, pending: 0 } }),
      node(2, { drain: { total: 0, evicted: 0, pending: 0, blockedBy: blocked } }),
      node(3, { initialState: { unschedulable: false, taints } }),
    ];
    expect(compactStatus({ nodes }).nodes).toEqual(nodes);
  });

  it('cuts output tails to their share so 2000 nodes fit in one object', () => {
    const long = `${'x'.repeat(10_000)}END`;
    const nodes = Array.from({ length: 2000 }, (_, i) => node(i, { outputTail: long }));
    const out = compactStatus({ nodes }).nodes ?? [];
    for (const n of out) {
      expect(Buffer.byteLength(n.outputTail ?? '')).toBeLessThanOrEqual(tailLimit(2000));
      expect(n.outputTail?.endsWith('END')).toBe(true);
    }
    expect(JSON.stringify(out).length).toBeLessThan(600 * 1024);
  });
});
