import { describe, expect, it } from 'vitest';
import type { NodeMaintenanceSpec, NodeStatus } from '../../shared/api/index.js';
import {
  admission,
  isActive,
  maintenancePhase,
  maxUnavailable,
  nextStep,
  summarize,
  transition,
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
      activeInThis: 0,
      limitInThis: 1,
      activeGlobally: 3,
      globalLimit: 10,
      activeElsewhere: undefined,
    };
    expect(admission(ok)).toEqual({ admit: true });
    expect(admission({ ...ok, activeInThis: 1 })).toMatchObject({
      reason: 'maxUnavailable (1) reached',
    });
    expect(admission({ ...ok, activeGlobally: 10 })).toMatchObject({ admit: false });
    expect(admission({ ...ok, activeElsewhere: 'ns/other' })).toMatchObject({
      reason: 'node is in maintenance ns/other',
    });
    expect(admission({ ...ok, limitInThis: 0 })).toMatchObject({ admit: false });
  });
});

describe('maintenance phase and summary', () => {
  it('derives the CR phase from its nodes', () => {
    expect(maintenancePhase([])).toBe('Pending');
    expect(maintenancePhase([node()])).toBe('Pending');
    expect(maintenancePhase([node({ phase: 'Draining' }), node()])).toBe('Running');
    expect(maintenancePhase([node({ phase: 'Succeeded' })])).toBe('Completed');
    expect(maintenancePhase([node({ phase: 'Succeeded' }), node({ phase: 'Failed' })])).toBe(
      'Failed',
    );
  });

  it('keeps the seed fields meaningful: progress, current action, conditions, completedAt', () => {
    const s = summarize(
      {
        nodes: [
          node({ name: 'a', phase: 'InAction', currentActionIndex: 1 }),
          node({ name: 'b', phase: 'Failed', message: 'drain timed out' }),
        ],
      },
      spec(),
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
      message: 'b: drain timed out',
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
