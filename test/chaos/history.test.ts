// The suite's own rules, table-tested: what counts as status going back, and the time to
// recover. A harness that misses a rollback or invents one is worse than none.
import { describe, expect, it } from 'vitest';
import type { NodeMaintenance, NodeStatus } from '../../shared/api/index.js';
import {
  advanced,
  recoverySeconds,
  regressions,
  rollbacks,
  longestStallSeconds,
  type Version,
} from './history.js';

function m(phase: string, nodes: Partial<NodeStatus>[], observed = 3): NodeMaintenance {
  return {
    apiVersion: 'noma.dev/v1alpha1',
    kind: 'NodeMaintenance',
    metadata: { name: 'x' },
    spec: { operationName: 'x', linearTicket: 'X-1', actions: [] },
    status: {
      phase: phase as 'Running',
      observedNodes: ['a', 'b', 'c'].slice(0, observed),
      nodes: nodes.map((n) => ({ name: 'a', phase: 'Pending', ...n })),
    },
  } as unknown as NodeMaintenance;
}

const inAction = (i: number, extra: Partial<NodeStatus> = {}): Partial<NodeStatus> => ({
  phase: 'InAction',
  currentActionIndex: i,
  ...extra,
});

describe('regressions', () => {
  it.each([
    ['forward through the phases', [{ phase: 'Pending' }], [{ phase: 'Draining' }], []],
    ['to the next action', [inAction(0)], [inAction(1)], []],
    ['a skipped phase (written together)', [{ phase: 'Pending' }], [inAction(0)], []],
    ['the same version again', [inAction(2)], [inAction(2)], []],
    [
      'InAction(Reboot) back to Drained',
      [inAction(1)],
      [{ phase: 'Drained' }],
      ['a: InAction(1) → Drained'],
    ],
    ['an earlier action', [inAction(2)], [inAction(1)], ['a: InAction(2) → InAction(1)']],
    ['out of Succeeded', [{ phase: 'Succeeded' }], [inAction(3)], ['a: Succeeded → InAction(3)']],
    [
      'Succeeded to Failed',
      [{ phase: 'Succeeded' }],
      [{ phase: 'Failed' }],
      ['a: Succeeded → Failed'],
    ],
  ] as const)('%s', (_name, before, after, want) => {
    expect(regressions(m('Running', [...before]), m('Running', [...after]))).toEqual(want);
  });

  it('sees a phase time dropped or moved back, and a changed boot ID before the reboot', () => {
    const prev = m('Running', [
      inAction(1, {
        phaseTimes: { cordoned: '2026-01-01T00:00:05Z', actionStarted: '2026-01-01T00:00:09Z' },
        bootIDBeforeReboot: 'boot-1',
      }),
    ]);
    const next = m('Running', [
      inAction(1, {
        phaseTimes: { cordoned: '2026-01-01T00:00:04Z' },
        bootIDBeforeReboot: 'boot-2',
      }),
    ]);
    expect(regressions(prev, next)).toEqual([
      'a: phaseTimes.cordoned 2026-01-01T00:00:05Z → 2026-01-01T00:00:04Z',
      'a: phaseTimes.actionStarted dropped (was 2026-01-01T00:00:09Z)',
      'a: bootIDBeforeReboot boot-1 → boot-2',
    ]);
  });

  it('sees the maintenance phase go back, a node entry vanish, observedNodes shrink', () => {
    expect(regressions(m('Completed', [{ phase: 'Succeeded' }]), m('Running', [], 2))).toEqual([
      'maintenance: Completed → Running',
      'maintenance: observedNodes shrank',
      'a: entry gone (was Succeeded)',
    ]);
  });
});

describe('rollbacks and recovery over versions', () => {
  const v = (at: number, rv: number, mm: NodeMaintenance): Version => ({ at, rv, m: mm });
  const versions = [
    v(1000, 1, m('Running', [{ phase: 'Drained' }])),
    v(2000, 2, m('Running', [inAction(0)])),
    v(3000, 3, m('Running', [inAction(1)])),
    v(9000, 4, m('Running', [{ phase: 'Drained' }])),
    v(9500, 5, m('Running', [inAction(1)])),
    v(12_000, 6, m('Running', [inAction(2)])),
  ];

  it('counts each write that went back, once', () => {
    const got = rollbacks(versions);
    expect(got).toHaveLength(1);
    expect(got[0]).toMatchObject({ fromRv: 3, toRv: 4, at: 9000 });
  });

  it('measures recovery to the first version ahead of the one before the fault', () => {
    // Fault at 5000 with InAction(1) in status: the stale Drained and the InAction(1) after it
    // are no progress; InAction(2) at 12000 is.
    expect(recoverySeconds(versions, 5000, 5000)).toBe(7);
    // Measured from the end of the fault.
    expect(recoverySeconds(versions, 5000, 10_000)).toBe(2);
    expect(recoverySeconds(versions, 13_000, 13_000)).toBeUndefined();
    // Only what a successor wrote (it leads from 11000): still timed from the fault.
    expect(recoverySeconds(versions, 2500, 2500, undefined, 11_000)).toBe(9.5);
  });

  it('times the longest a node went without progress after the fault', () => {
    const two = (a: Partial<NodeStatus>, b: Partial<NodeStatus>) =>
      m('Running', [a, { name: 'b', ...b }]);
    const vs = [
      v(1000, 1, two(inAction(0), { phase: 'Draining' })),
      v(3000, 2, two(inAction(0), { phase: 'Drained' })),
      v(4000, 3, two(inAction(1), { phase: 'Drained' })),
      v(15_000, 4, two(inAction(1), { phase: 'InAction', currentActionIndex: 0 })),
      v(16_000, 5, two({ phase: 'Succeeded' }, { phase: 'Succeeded' })),
    ];
    // b: Drained at 3000, nothing until 15000: 12 s.
    expect(longestStallSeconds(vs, 2000)).toBe(12);
    // Cut at 4000: a moved at 4000 (2 s after the fault), b stands from 3000 to the end (1 s).
    expect(longestStallSeconds(vs.slice(0, 3), 2000)).toBe(2);
    // Cut at 15000: b's 12 s (a, unfinished, stood 11 s until the end).
    expect(longestStallSeconds(vs.slice(0, 4), 2000)).toBe(12);
    // Writes before notBefore move nothing: b waits from 2000 to 15000.
    expect(longestStallSeconds(vs, 2000, 3500)).toBe(13);
  });

  it('follows one node when asked to', () => {
    const base = m('Running', [inAction(0), { name: 'b', phase: 'Draining' }]);
    const otherMoved = m('Running', [inAction(0), { name: 'b', phase: 'Drained' }]);
    expect(advanced(base, otherMoved)).toBe(true);
    expect(advanced(base, otherMoved, 'a')).toBe(false);
    expect(advanced(base, m('Running', [inAction(1), { name: 'b', phase: 'Draining' }]), 'a')).toBe(
      true,
    );
  });
});
