import { describe, expect, it } from 'vitest';
import type { NodeStatus } from '../../shared/api/index.js';
import { planRequests } from './requests.js';

const initial = { unschedulable: false };
const nodes: NodeStatus[] = [
  { name: 'failed-1', phase: 'Failed', initialState: initial },
  { name: 'failed-2', phase: 'Failed', initialState: initial },
  { name: 'waiting', phase: 'Pending' },
  { name: 'admitted', phase: 'Pending', initialState: initial },
  { name: 'draining', phase: 'Draining', initialState: initial },
  { name: 'done', phase: 'Succeeded', initialState: initial },
];

describe('planRequests', () => {
  it.each([
    ['restore a failed node', ['failed-1'], [], { restore: ['failed-1'], retry: [] }],
    ['restore a node not started', ['waiting'], [], { restore: ['waiting'], retry: [] }],
    ['* restores every failed node', ['*'], [], { restore: ['failed-1', 'failed-2'], retry: [] }],
    ['retry a failed node', [], ['failed-2'], { restore: [], retry: ['failed-2'] }],
    [
      '* and a name do not restore twice',
      ['*', 'failed-1'],
      [],
      { restore: ['failed-1', 'failed-2'], retry: [] },
    ],
  ] as const)('%s', (_case, restore, retry, expected) => {
    const plan = planRequests(nodes, restore, retry);
    expect({ restore: plan.restore, retry: plan.retry }).toEqual(expected);
    expect(plan.refused).toEqual([]);
    expect(plan.doneRestore).toEqual(restore);
    expect(plan.doneRetry).toEqual(retry);
  });

  it.each([
    ['restore', 'draining', /it is Draining/],
    ['restore', 'admitted', /not started yet can be restored \(it is Pending\)/],
    ['restore', 'done', /it is Succeeded/],
    ['restore', 'nope', /not a node of this maintenance/],
    ['retry', 'waiting', /only a Failed node can be retried \(it is Pending\)/],
    ['retry', 'done', /it is Succeeded/],
  ] as const)('refuses to %s %s, and still clears the entry', (request, name, reason) => {
    const plan =
      request === 'restore' ? planRequests(nodes, [name], []) : planRequests(nodes, [], [name]);
    expect(plan.restore).toEqual([]);
    expect(plan.retry).toEqual([]);
    expect(plan.refused).toHaveLength(1);
    expect(plan.refused[0]).toMatchObject({ node: name, request });
    expect(plan.refused[0]?.reason).toMatch(reason);
    expect(request === 'restore' ? plan.doneRestore : plan.doneRetry).toEqual([name]);
  });

  it('does not retry a node it is asked to restore in the same batch', () => {
    const plan = planRequests(nodes, ['failed-1'], ['failed-1']);
    expect(plan.restore).toEqual(['failed-1']);
    expect(plan.retry).toEqual([]);
    expect(plan.refused[0]).toMatchObject({ node: 'failed-1', request: 'retry' });
  });
});
