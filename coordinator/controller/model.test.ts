import { describe, expect, it } from 'vitest';
import type { NodeMaintenanceSpec, NodeStatus } from '../../shared/api/index.js';
import {
  admission,
  failedSummary,
  holdReason,
  isActive,
  isHalted,
  isHeld,
  maintenancePhase,
  maxFailedNodes,
  maxUnavailable,
  nextStep,
  summarize,
  transition,
  unavailableNodes,
} from './model.js';

const spec = (over: Partial<NodeMaintenanceSpec> = {}): NodeMaintenanceSpec => ({
  operationName: 'op',
  linearTicket: 'ENG-1',
  nodeSelector: 'a=b',
  actions: [{ type: 'Reboot' }, { type: 'Complete' }],
  ...over,
});
const node = (over: Partial<NodeStatus> = {}): NodeStatus => ({
  name: 'n1',
  phase: 'Pending',
  ...over,
});
const initial = { unschedulable: false, taints: [] };
const now = new Date('2026-11-21T00:00:00Z');

describe('nextStep', () => {
  it('walks Pending → admit → cordon → drain → actions → finish', () => {
    expect(nextStep(node(), spec())).toEqual({ kind: 'admit' });
    expect(nextStep(node({ initialState: initial }), spec())).toEqual({ kind: 'cordon' });
    expect(nextStep(node({ phase: 'Cordoned' }), spec())).toEqual({ kind: 'drain' });
    // Interrupted while draining: drain again (evictions are idempotent).
    expect(nextStep(node({ phase: 'Draining' }), spec())).toEqual({ kind: 'drain' });
    expect(nextStep(node({ phase: 'Drained' }), spec())).toMatchObject({
      kind: 'action',
      index: 0,
    });
    expect(nextStep(node({ phase: 'InAction', currentActionIndex: 1 }), spec())).toMatchObject({
      kind: 'action',
      index: 1,
      action: { type: 'Complete' },
    });
    expect(nextStep(node({ phase: 'InAction', currentActionIndex: 2 }), spec())).toEqual({
      kind: 'finish',
    });
    expect(nextStep(node({ phase: 'Drained' }), spec({ actions: [] }))).toEqual({ kind: 'finish' });
  });

  it('takes a retried node, once drained again, to the step that failed, not the first', () => {
    expect(nextStep(node({ phase: 'Drained', currentActionIndex: 1 }), spec())).toMatchObject({
      kind: 'action',
      index: 1,
    });
  });

  it('does nothing more for finished nodes', () => {
    for (const phase of ['Succeeded', 'Failed', 'Restored'] as const) {
      expect(nextStep(node({ phase }), spec())).toEqual({ kind: 'terminal' });
    }
  });
});

describe('blast radius', () => {
  it('counts a node as active from its recorded initial state until it finishes', () => {
    expect(isActive(node())).toBe(false);
    expect(isActive(node({ initialState: initial }))).toBe(true);
    expect(isActive(node({ phase: 'Draining', initialState: initial }))).toBe(true);
    expect(isActive(node({ phase: 'Succeeded', initialState: initial }))).toBe(false);
  });

  it('reads maxUnavailable as a count or a percentage rounded down, at least 1', () => {
    expect(maxUnavailable(spec(), 7)).toBe(7);
    expect(maxUnavailable(spec({ options: { maxUnavailable: 2 } }), 7)).toBe(2);
    expect(maxUnavailable(spec({ options: { maxUnavailable: '50%' } }), 7)).toBe(3);
    expect(maxUnavailable(spec({ options: { maxUnavailable: '10%' } }), 3)).toBe(1);
  });

  it('admits within every limit and explains each refusal', () => {
    const ok = {
      unavailableInThis: 0,
      limitInThis: 1,
      unavailableGlobally: 3,
      globalLimit: 10,
      heldElsewhere: undefined,
      hold: undefined,
    };
    expect(admission(ok)).toEqual({ admit: true });
    expect(admission({ ...ok, unavailableInThis: 1 })).toMatchObject({
      reason: 'maxUnavailable (1) reached: 1 selected node(s) unavailable',
    });
    expect(admission({ ...ok, unavailableGlobally: 10 })).toMatchObject({ admit: false });
    expect(admission({ ...ok, unavailableGlobally: 9 })).toEqual({ admit: true });
    expect(admission({ ...ok, heldElsewhere: 'ns/other' })).toMatchObject({
      reason: 'node is in maintenance ns/other',
    });
    expect(admission({ ...ok, limitInThis: 0 })).toMatchObject({ admit: false });
    expect(admission({ ...ok, hold: 'paused: spec.paused is true' })).toEqual({
      admit: false,
      reason: 'paused: spec.paused is true',
    });
  });

  it('holds failed nodes (they keep their slot) but not finished or restored ones', () => {
    expect(isHeld(node({ phase: 'Failed' }))).toBe(true);
    expect(isHeld(node({ phase: 'Draining', initialState: initial }))).toBe(true);
    expect(isHeld(node({ phase: 'Restored', initialState: initial }))).toBe(false);
    expect(isHeld(node({ phase: 'Succeeded', initialState: initial }))).toBe(false);
    expect(isHeld(node())).toBe(false);
  });

  it.each([
    // [case, nodes, unavailable outside noma, expected]
    ['nothing held, all available', [node({ name: 'a' }), node({ name: 'b' })], [], []],
    [
      'a failed node keeps its slot',
      [node({ name: 'a', phase: 'Failed' }), node({ name: 'b' })],
      [],
      ['a'],
    ],
    [
      'a NotReady or cordoned node not started counts',
      [node({ name: 'a' }), node({ name: 'b' })],
      ['b'],
      ['b'],
    ],
    [
      'a finished node does not count even when cordoned',
      [node({ name: 'a', phase: 'Succeeded', initialState: initial }), node({ name: 'b' })],
      ['a'],
      [],
    ],
    [
      'in maintenance and unavailable outside count once',
      [node({ name: 'a', phase: 'Draining', initialState: initial }), node({ name: 'b' })],
      ['a', 'b'],
      ['a', 'b'],
    ],
  ] as const)('unavailable nodes: %s', (_case, nodes, outside, expected) => {
    const set = unavailableNodes(nodes, (n) => (outside as readonly string[]).includes(n));
    expect([...set].sort()).toEqual(expected);
  });
});

describe('failure budget and pause', () => {
  it('reads maxFailedNodes as a count or percentage, default 1, never 0', () => {
    expect(maxFailedNodes(spec(), 10)).toBe(1);
    expect(maxFailedNodes(spec({ options: { maxFailedNodes: 3 } }), 10)).toBe(3);
    expect(maxFailedNodes(spec({ options: { maxFailedNodes: '25%' } }), 10)).toBe(2);
    expect(maxFailedNodes(spec({ options: { maxFailedNodes: 0 } }), 10)).toBe(1);
    expect(maxFailedNodes(spec({ options: { maxFailedNodes: '1%' } }), 10)).toBe(1);
  });

  it('halts once as many nodes failed as the budget allows, and says why', () => {
    const one = [node({ name: 'a', phase: 'Failed' }), node({ name: 'b' })];
    expect(isHalted(one, spec())).toBe(true);
    expect(isHalted(one, spec({ options: { maxFailedNodes: 2 } }))).toBe(false);
    expect(isHalted([node({ name: 'b' })], spec())).toBe(false);
    expect(holdReason(one, spec())).toMatch(/^halted: 1 node\(s\) failed, maxFailedNodes is 1/);
    expect(holdReason([node()], spec({ paused: true }))).toBe('paused: spec.paused is true');
    expect(holdReason([node()], spec())).toBeUndefined();
  });

  it('bounds the failed-node summary whatever the number of nodes', () => {
    const many = Array.from({ length: 12 }, (_, i) =>
      node({ name: `n${i}`, phase: 'Failed', message: 'x'.repeat(5000) }),
    );
    const text = failedSummary(many);
    expect(text.startsWith('12 nodes failed; first 3: n0: ')).toBe(true);
    expect(text.length).toBeLessThan(1000);
    expect(failedSummary([node({ name: 'a', phase: 'Failed', message: 'boom' })])).toBe(
      '1 node(s) failed: a: boom',
    );
  });
});

describe('maintenance phase and summary', () => {
  it('derives the CR phase from its nodes', () => {
    const s = spec();
    expect(maintenancePhase([], s)).toBe('Pending');
    expect(maintenancePhase([node()], s)).toBe('Pending');
    expect(maintenancePhase([node({ phase: 'Draining' }), node()], s)).toBe('Running');
    expect(maintenancePhase([node({ phase: 'Succeeded' })], s)).toBe('Completed');
    expect(maintenancePhase([node({ phase: 'Succeeded' }), node({ phase: 'Failed' })], s)).toBe(
      'Failed',
    );
    // Not every node finished: the failure budget halts it, or a pause holds it.
    expect(maintenancePhase([node({ phase: 'Failed' }), node()], s)).toBe('Halted');
    expect(
      maintenancePhase(
        [node({ phase: 'Failed' }), node()],
        spec({ options: { maxFailedNodes: 2 } }),
      ),
    ).toBe('Running');
    expect(maintenancePhase([node({ phase: 'Draining' }), node()], spec({ paused: true }))).toBe(
      'Paused',
    );
    expect(maintenancePhase([node({ phase: 'Succeeded' })], spec({ paused: true }))).toBe(
      'Completed',
    );
  });

  it('says in Ready why a halted maintenance does not go on', () => {
    const s = summarize(
      { nodes: [node({ name: 'a', phase: 'Failed', message: 'exit 1' }), node({ name: 'b' })] },
      spec(),
      now,
      1,
    );
    expect(s.phase).toBe('Halted');
    expect(s.conditions?.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'False',
      reason: 'FailureBudgetExceeded',
    });
    expect(s.conditions?.find((c) => c.type === 'Ready')?.message).toContain('a: exit 1');
  });

  it('keeps the seed fields meaningful: progress, current action, conditions, completedAt', () => {
    const s = summarize(
      {
        nodes: [
          node({ name: 'a', phase: 'InAction', currentActionIndex: 1 }),
          node({ name: 'b', phase: 'Failed', message: 'drain timed out' }),
        ],
      },
      spec({ options: { maxFailedNodes: 2 } }),
      now,
      3,
    );
    expect(s).toMatchObject({
      phase: 'Running',
      progress: '1/2',
      currentActionIndex: 1,
      currentActionType: 'Complete',
      observedGeneration: 3,
    });
    expect(s.conditions?.find((c) => c.type === 'Degraded')).toMatchObject({
      status: 'True',
      message: '1 node(s) failed: b: drain timed out',
    });
    const done = summarize({ nodes: [node({ phase: 'Succeeded' })] }, spec(), now, 3);
    expect(done).toMatchObject({ phase: 'Completed', completedAt: now.toISOString() });
    expect(done.currentActionType).toBeUndefined();
  });

  it('lists the pods of steps in flight in pendingJobs, with the earliest timeout', () => {
    const job = (pod: string, timeoutAt: string) => ({ pod, namespace: 'noma-system', timeoutAt });
    const s = summarize(
      {
        pendingJobs: ['stale'],
        nodes: [
          node({ name: 'a', phase: 'InAction', job: job('p-a', '2026-11-21T02:00:00.000Z') }),
          node({ name: 'b', phase: 'InAction', job: job('p-b', '2026-11-21T01:00:00.000Z') }),
          node({ name: 'c', phase: 'InAction', currentActionIndex: 0 }),
          // Finished nodes' pods are not pending, whatever their status still says.
          node({ name: 'd', phase: 'Failed', job: job('p-d', '2026-11-21T00:30:00.000Z') }),
        ],
      },
      spec(),
      now,
      1,
    );
    expect(s.pendingJobs).toEqual(['p-a', 'p-b']);
    expect(s.jobTimeoutAt).toBe('2026-11-21T01:00:00.000Z');
    const none = summarize(
      { ...s, nodes: [node({ name: 'a', phase: 'Succeeded' })] },
      spec(),
      now,
      1,
    );
    expect(none.pendingJobs).toBeUndefined();
    expect(none.jobTimeoutAt).toBeUndefined();
  });

  it('stamps transitions, and completedAt on terminal phases', () => {
    const t = transition(node(), 'Succeeded', now);
    expect(t).toMatchObject({
      phase: 'Succeeded',
      lastTransitionTime: now.toISOString(),
      completedAt: now.toISOString(),
    });
  });
});
