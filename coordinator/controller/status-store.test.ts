import { describe, expect, it } from 'vitest';
import type { NodeMaintenance, NodeStatus } from '../../shared/api/index.js';
import { createLogger } from '../../shared/log.js';
import { STATUS_TAIL_BYTES } from '../../shared/protocol.js';
import {
  compactStatus,
  createStatusStore,
  STATUS_TAILS_BUDGET_BYTES,
  tailLimit,
  type StatusWriter,
} from './status-store.js';

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

describe('createStatusStore', () => {
  const cr = {
    apiVersion: 'noma.dev/v1alpha1',
    kind: 'NodeMaintenance',
    metadata: { name: 'm', namespace: 'ops', generation: 1 },
    spec: { operationName: 'op', linearTicket: 'ENG-1', nodeSelector: 'a=b', actions: [] },
  } as const satisfies NodeMaintenance;

  /** A status writer that holds each write until released, as a slow API server would. */
  function slowWriter() {
    const patches: Record<string, unknown>[] = [];
    let release: () => void = () => undefined;
    const write: StatusWriter = (patch) => {
      patches.push(structuredClone(patch));
      return new Promise<void>((r) => {
        release = r;
      });
    };
    return {
      patches,
      write,
      release: () => {
        release();
      },
    };
  }

  const store = (write: StatusWriter, clock: { now: Date }) =>
    createStatusStore({
      initial: { nodes: [node(1, { phase: 'Pending' }), node(2, { phase: 'Pending' })] },
      cr: () => cr,
      write,
      log: createLogger('test', 'silent'),
      now: () => clock.now,
      intervalMs: 10,
    });

  it('groups the transitions made while a write is in flight into the next write', async () => {
    const w = slowWriter();
    const s = store(w.write, { now: new Date('2026-11-21T00:00:00Z') });
    const first = s.setNode(node(1, { phase: 'Cordoned' }), false);
    const second = s.setNode(node(1, { phase: 'Draining' }), false);
    const third = s.setNode(node(2, { phase: 'Cordoned' }), false);
    expect(w.patches).toHaveLength(1);
    w.release();
    await first;
    await new Promise((r) => setImmediate(r));
    expect(w.patches).toHaveLength(2);
    const phases = (w.patches[1]?.['nodes'] as NodeStatus[]).map((n) => n.phase);
    expect(phases).toEqual(['Draining', 'Cordoned']);
    w.release();
    await Promise.all([second, third]);
    expect(s.writes).toBe(2);
  });

  it('writes the summary of the nodes as they are, and nothing when nothing changed', async () => {
    const clock = { now: new Date('2026-11-21T00:00:00Z') };
    const patches: Record<string, unknown>[] = [];
    const s = store((p) => {
      patches.push(p);
      return Promise.resolve();
    }, clock);
    await s.setNode(node(1), false);
    expect(patches.at(-1)?.['progress']).toBe('1/2');
    await s.setNode(node(2), false);
    expect(s.current.phase).toBe('Completed');
    const completedAt = s.current.completedAt;
    expect(completedAt).toBe(clock.now.toISOString());
    // A later read or flush must not move what was already decided.
    clock.now = new Date('2026-11-21T01:00:00Z');
    const before = patches.length;
    await s.flush();
    expect(patches).toHaveLength(before);
    expect(s.current.completedAt).toBe(completedAt);
  });

  it('writes progress within the interval, without being awaited', async () => {
    const patches: Record<string, unknown>[] = [];
    const s = store(
      (p) => {
        patches.push(p);
        return Promise.resolve();
      },
      { now: new Date() },
    );
    await s.setNode(node(1, { phase: 'Draining', message: 'waiting' }), true);
    expect(patches).toHaveLength(0);
    expect(s.node('gpu-0001')?.message).toBe('waiting');
    await new Promise((r) => setTimeout(r, 30));
    expect(patches).toHaveLength(1);
  });
});
