import { describe, expect, it } from 'vitest';
import type { NodeMaintenanceSpec, NodeStatus } from '../../shared/api/index.js';
import { transition } from './model.js';
import {
  askedToWait,
  compactPhaseTimes,
  findStuck,
  isoSeconds,
  namedNodes,
  slaCondition,
  stuckCondition,
} from './node-states.js';
import { compactStatus } from './status-store.js';

const T0 = new Date('2026-01-01T00:00:00.123Z');
const at = (s: number) => new Date(T0.getTime() + s * 1000);
const spec = (over: Partial<NodeMaintenanceSpec> = {}): NodeMaintenanceSpec => ({
  operationName: 'op',
  linearTicket: 'ENG-1',
  nodeSelector: 'a=b',
  actions: [
    { type: 'Run', name: 'flash', run: { command: ['true'] } },
    { type: 'InteractiveShell' },
  ],
  ...over,
});
const started: NodeStatus = {
  name: 'n',
  phase: 'Pending',
  startedAt: T0.toISOString(),
  initialState: { unschedulable: false },
};

describe('phaseTimes (transition)', () => {
  it('stamps the state entered, to the second, and keeps the earlier ones', () => {
    let n = transition(started, 'Cordoned', at(1));
    n = transition(n, 'Draining', at(2));
    n = transition(n, 'Drained', at(3));
    n = transition(n, 'InAction', at(4), { actionID: 'u/n/0/1', currentActionIndex: 0 });
    expect(n.phaseTimes).toEqual({
      cordoned: '2026-01-01T00:00:01Z',
      drained: '2026-01-01T00:00:03Z',
      actionStarted: '2026-01-01T00:00:04Z',
    });
  });

  it.each([
    ['Succeeded', 'completed'],
    ['Failed', 'failed'],
    ['Restored', 'restored'],
  ] as const)('%s sets %s', (phase, key) => {
    expect(transition(started, phase, at(9)).phaseTimes).toEqual({ [key]: isoSeconds(at(9)) });
  });

  it('a new step within InAction is a new actionStarted; the same phase again changes nothing', () => {
    const first = transition(started, 'InAction', at(1), { actionID: 'u/n/0/1' });
    const same = transition(first, 'InAction', at(2), { message: 'progress' });
    expect(same.phaseTimes).toEqual(first.phaseTimes);
    const { actionID: _id, ...between } = same;
    const next = transition(between, 'InAction', at(3), { actionID: 'u/n/1/1' });
    expect(next.phaseTimes?.actionStarted).toBe('2026-01-01T00:00:03Z');
  });

  it('keeps a 2000-node status small: finished nodes keep only how they ended', () => {
    const times = {
      scheduled: isoSeconds(T0),
      cordoned: isoSeconds(T0),
      drained: isoSeconds(T0),
      actionStarted: isoSeconds(T0),
      completed: isoSeconds(T0),
    };
    const status = (n: number, phase: NodeStatus['phase']) => ({
      nodes: Array.from({ length: n }, (_, i): NodeStatus => ({ name: `n${i}`, phase })),
    });
    const cost = (n: number, phase: NodeStatus['phase']) => {
      const s = status(n, phase);
      const without = JSON.stringify(compactStatus(s)).length;
      const nodes = s.nodes.map((x) => ({ ...x, phaseTimes: times }));
      return (JSON.stringify(compactStatus({ nodes })).length - without) / n;
    };
    expect(cost(2000, 'Succeeded')).toBeLessThanOrEqual(50); // ~100 KB at 2000 nodes
    expect(cost(499, 'Succeeded')).toBeGreaterThan(150); // a small one keeps its history
    expect(cost(2000, 'InAction')).toBeGreaterThan(150); // nodes in flight keep theirs
    expect(compactPhaseTimes({ name: 'a', phase: 'Failed', phaseTimes: times }, true)).toEqual({
      name: 'a',
      phase: 'Failed',
      phaseTimes: { completed: times.completed },
    });
  });
});

describe('askedToWait and findStuck', () => {
  const now = at(3600);
  const HOUR = 3_600_000;
  const node = (over: Partial<NodeStatus>): NodeStatus => ({
    ...started,
    lastTransitionTime: T0.toISOString(),
    ...over,
  });

  it.each<[string, NodeStatus, Partial<NodeMaintenanceSpec>, string | undefined]>([
    [
      'not started (waits for capacity)',
      { name: 'n', phase: 'Pending', message: 'waiting: maxUnavailable (1) reached' },
      {},
      'not started',
    ],
    [
      'held by the failure budget',
      node({ phase: 'Drained', message: 'waiting: halted: 1 node(s) failed' }),
      {},
      'waiting: halted: 1 node(s) failed',
    ],
    ['paused', node({ phase: 'Draining' }), { paused: true }, 'paused'],
    [
      'an InteractiveShell waiting for release',
      node({ phase: 'InAction', currentActionIndex: 1 }),
      {},
      'InteractiveShell waits for its release',
    ],
    ['a Run step', node({ phase: 'InAction', currentActionIndex: 0 }), {}, undefined],
    ['a drain', node({ phase: 'Draining' }), {}, undefined],
  ])('%s', (_what, n, over, want) => {
    expect(askedToWait(n, spec(over))).toBe(want);
  });

  it.each<[string, NodeStatus, number, string | undefined]>([
    [
      'a drain blocked for an hour',
      node({
        phase: 'Draining',
        drain: {
          total: 2,
          evicted: 1,
          pending: 1,
          blockedBy: { kind: 'PodDisruptionBudget', namespace: 'ml', name: 'pdb' },
        },
      }),
      HOUR - 1,
      'Draining for 60m without progress, drain blocked by PodDisruptionBudget ml/pdb',
    ],
    ['exactly at the threshold', node({ phase: 'Draining' }), HOUR, undefined],
    [
      'a step running since its start',
      node({
        phase: 'InAction',
        currentActionIndex: 0,
        phaseTimes: { actionStarted: isoSeconds(at(60)) },
      }),
      30 * 60_000,
      'step 0 (flash) for 59m without progress',
    ],
    [
      'a second step started recently',
      node({
        phase: 'InAction',
        currentActionIndex: 0,
        phaseTimes: { actionStarted: isoSeconds(at(3000)) },
      }),
      30 * 60_000,
      undefined,
    ],
    ['a failed node', node({ phase: 'Failed' }), 1, undefined],
    ['off (0)', node({ phase: 'Draining' }), 0, undefined],
  ])('%s', (_what, n, after, want) => {
    const stuck = findStuck([n], spec(), now, after);
    expect(stuck[0]?.reason).toBe(want);
  });
});

describe('findStuck after a wait', () => {
  it('does not count the time a node waited between steps (pause, failure budget)', () => {
    const n: NodeStatus = { ...started, phase: 'Drained', lastTransitionTime: T0.toISOString() };
    const now = at(7200);
    expect(findStuck([n], spec(), now, 3_600_000).map((x) => x.name)).toEqual(['n']);
    const ended = () => at(7000).getTime();
    expect(findStuck([n], spec(), now, 3_600_000, ended)).toEqual([]);
    expect(findStuck([n], spec(), at(7000 + 3601), 3_600_000, ended)[0]?.since).toBe(
      at(7000).toISOString(),
    );
  });
});

describe('conditions stay bounded', () => {
  it('SLAExpired names at most 10 nodes', () => {
    const nodes: NodeStatus[] = Array.from({ length: 25 }, (_, i) => ({
      name: `node-${i}`,
      phase: 'Draining',
      phaseTimes: { slaExpired: isoSeconds(T0) },
    }));
    const c = slaCondition([...nodes, { name: 'ok', phase: 'Draining' }], '1h');
    expect(c).toMatchObject({ status: 'True', reason: 'DrainTimeoutPassed' });
    expect(c.message).toContain('25 nodes, first 10: node-0, node-1');
    expect(c.message).not.toContain('node-10');
    expect(slaCondition([], '1h').status).toBe('False');
  });

  it('Stuck quotes 3 nodes and counts the rest', () => {
    const stuck = Array.from({ length: 7 }, (_, i) => ({
      name: `n${i}`,
      phase: 'Draining' as const,
      since: T0.toISOString(),
      reason: 'x'.repeat(300),
    }));
    const c = stuckCondition(stuck);
    expect(c.message).toMatch(/^7 node\(s\) stuck: n0: x+; n1: x+; n2: x+; and 4 more$/);
    expect(stuckCondition([])).toMatchObject({ status: 'False', reason: 'Progressing' });
    expect(namedNodes(['a'])).toBe('1 node(s): a');
  });
});
