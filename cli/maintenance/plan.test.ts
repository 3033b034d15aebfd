import { describe, expect, it } from 'vitest';
import type { NodeMaintenance, NodeStatus } from '../../shared/api/index.js';
import {
  invalidNodeNames,
  pauseProgress,
  planRequest,
  queueProgress,
  splitNodeFlags,
  type NodeRequest,
} from './plan.js';

const nodes: NodeStatus[] = [
  { name: 'failed-a', phase: 'Failed', initialState: { unschedulable: false } },
  { name: 'failed-b', phase: 'Failed', initialState: { unschedulable: false } },
  { name: 'done', phase: 'Succeeded', initialState: { unschedulable: false } },
  { name: 'waiting', phase: 'Pending' },
  { name: 'admitted', phase: 'Pending', initialState: { unschedulable: false } },
  { name: 'draining', phase: 'Draining', initialState: { unschedulable: false } },
  { name: 'restored', phase: 'Restored' },
];

function maintenance(
  annotations: Record<string, string> = {},
  over: { nodes?: NodeStatus[] | undefined; deleting?: boolean; phase?: 'Running' | 'Paused' } = {},
): NodeMaintenance {
  return {
    apiVersion: 'noma.dev/v1alpha1',
    kind: 'NodeMaintenance',
    metadata: {
      name: 'reboot',
      namespace: 'ops',
      annotations,
      ...(over.deleting === true ? { deletionTimestamp: '2026-08-01T12:00:00Z' } : {}),
    },
    spec: { operationName: 'reboot', linearTicket: 'ENG-1', nodeSelector: 'a=b', actions: [] },
    status:
      'nodes' in over && over.nodes === undefined
        ? { phase: 'Pending' }
        : { phase: over.phase ?? 'Halted', nodes: over.nodes ?? nodes },
  };
}

const restore = (...n: string[]): NodeRequest => ({ kind: 'restore', nodes: n });
const retry = (...n: string[]): NodeRequest => ({ kind: 'retry', nodes: n });
const allFailed: NodeRequest = { kind: 'restore', allFailed: true };

describe('planRequest: accepted', () => {
  it.each<[string, Record<string, string>, NodeRequest, string[], string[], string]>([
    ['restore a failed node', {}, restore('failed-a'), ['failed-a'], [], 'failed-a'],
    ['restore a node not started', {}, restore('waiting'), ['waiting'], [], 'waiting'],
    [
      'restore merges with entries there',
      { 'noma.dev/restore': 'failed-b' },
      restore('failed-a'),
      ['failed-a'],
      [],
      'failed-b,failed-a',
    ],
    [
      'restore of a queued node writes nothing new',
      { 'noma.dev/restore': 'failed-a' },
      restore('failed-a', 'waiting'),
      ['waiting'],
      ['failed-a'],
      'failed-a,waiting',
    ],
    ['--all-failed writes *', {}, allFailed, ['*'], [], '*'],
    [
      '--all-failed keeps named entries',
      { 'noma.dev/restore': 'waiting' },
      allFailed,
      ['*'],
      [],
      'waiting,*',
    ],
    ['--all-failed twice', { 'noma.dev/restore': '*' }, allFailed, [], ['*'], '*'],
    ['retry a failed node', {}, retry('failed-a'), ['failed-a'], [], 'failed-a'],
    [
      'retry merges with entries there',
      { 'noma.dev/retry': 'failed-b' },
      retry('failed-a', 'failed-b'),
      ['failed-a'],
      ['failed-b'],
      'failed-b,failed-a',
    ],
    [
      'retry ignores blanks and repeats already there',
      { 'noma.dev/retry': ' failed-b,,failed-b ' },
      retry('failed-a'),
      ['failed-a'],
      [],
      'failed-b,failed-a',
    ],
    [
      'restore of a not-started node beside a queued *',
      { 'noma.dev/restore': '*' },
      restore('waiting'),
      ['waiting'],
      [],
      '*,waiting',
    ],
  ])('%s', (_what, annotations, req, added, already, value) => {
    expect(planRequest(maintenance(annotations), req)).toEqual({ ok: true, added, already, value });
  });
});

describe('planRequest: refused, naming the node and its phase', () => {
  it.each<[string, NodeMaintenance, NodeRequest, string[]]>([
    [
      'restore a succeeded node',
      maintenance(),
      restore('done'),
      ['done is Succeeded: only a Failed node, or one that has not started, can be restored'],
    ],
    [
      'restore a node being cordoned',
      maintenance(),
      restore('admitted'),
      [
        'admitted is Pending and already being cordoned: only a Failed node, or one that has not started, can be restored',
      ],
    ],
    [
      'restore a node in flight, and an unknown one, with a good one',
      maintenance(),
      restore('failed-a', 'draining', 'gpu-99'),
      [
        'draining is Draining: only a Failed node, or one that has not started, can be restored',
        'gpu-99 is not a node of this maintenance',
      ],
    ],
    [
      'restore a restored node',
      maintenance(),
      restore('restored'),
      ['restored is already Restored'],
    ],
    [
      'retry a node that has not started',
      maintenance(),
      retry('waiting'),
      ['waiting is Pending: only a Failed node can be retried'],
    ],
    [
      'retry a succeeded node',
      maintenance(),
      retry('done'),
      ['done is Succeeded: only a Failed node can be retried'],
    ],
    [
      'retry a node queued for restore',
      maintenance({ 'noma.dev/restore': 'failed-a' }),
      retry('failed-a'),
      [
        'failed-a is already queued for restore (noma.dev/restore); remove it there first to retry it instead',
      ],
    ],
    [
      'retry while every failed node is queued for restore',
      maintenance({ 'noma.dev/restore': '*' }),
      retry('failed-b'),
      [
        'failed-b is already queued for restore (noma.dev/restore=*, every failed node); remove it there first to retry it instead',
      ],
    ],
    [
      'restore a node queued for retry',
      maintenance({ 'noma.dev/retry': 'failed-a' }),
      restore('failed-a'),
      [
        'failed-a is already queued for retry (noma.dev/retry); remove it there first to restore it instead',
      ],
    ],
    [
      '--all-failed with no failed node',
      maintenance({}, { nodes: nodes.filter((n) => n.phase !== 'Failed') }),
      allFailed,
      ['no node of ops/reboot is Failed: nothing to restore'],
    ],
    [
      'a maintenance that has not selected its nodes',
      maintenance({}, { nodes: undefined }),
      retry('failed-a'),
      ['ops/reboot has not selected its nodes yet: nothing to retry'],
    ],
    [
      'a maintenance being deleted',
      maintenance({}, { deleting: true }),
      allFailed,
      ['ops/reboot is being deleted: the deletion returns its nodes to their initial state'],
    ],
  ])('%s', (_what, m, req, problems) => {
    expect(planRequest(m, req)).toEqual({ ok: false, problems });
  });
});

describe('--wait probes', () => {
  it.each<[string, NodeMaintenance, boolean, boolean]>([
    ['pause: Running is not yet paused', maintenance({}, { phase: 'Running' }), true, false],
    ['pause: Paused is done', maintenance({}, { phase: 'Paused' }), true, true],
    ['resume: Paused is not yet resumed', maintenance({}, { phase: 'Paused' }), false, false],
    ['resume: Running is done', maintenance({}, { phase: 'Running' }), false, true],
  ])('%s', (_what, m, paused, done) => {
    expect(pauseProgress(m, paused).done).toBe(done);
  });

  it('pause of a finished maintenance waits for nothing', () => {
    const m = maintenance();
    m.status = { phase: 'Completed' };
    expect(pauseProgress(m, true)).toEqual({
      done: true,
      text: 'it has finished (phase Completed)',
    });
  });

  it('restore/retry are done when the coordinator took every entry asked for', () => {
    const queued = maintenance({ 'noma.dev/restore': 'failed-b,waiting' });
    expect(queueProgress(queued, 'restore', ['failed-a', 'waiting'])).toEqual({
      done: false,
      waitingFor: 'the coordinator to take waiting from noma.dev/restore',
    });
    expect(queueProgress(maintenance(), 'restore', ['restored'])).toEqual({
      done: true,
      text: 'restored Restored, phase Halted',
    });
    expect(queueProgress(maintenance({ 'noma.dev/restore': '*' }), 'restore', ['*']).done).toBe(
      false,
    );
    expect(queueProgress(maintenance(), 'restore', ['*'])).toEqual({
      done: true,
      text: 'phase Halted',
    });
  });
});

describe('--node flags', () => {
  it.each<[string[], string[]]>([
    [['gpu-01'], ['gpu-01']],
    [
      ['gpu-01', 'gpu-02'],
      ['gpu-01', 'gpu-02'],
    ],
    [
      ['gpu-01,gpu-02', ' gpu-03 ', 'gpu-01'],
      ['gpu-01', 'gpu-02', 'gpu-03'],
    ],
    [[], []],
  ])('%j splits to %j', (flags, names) => {
    expect(splitNodeFlags(flags)).toEqual(names);
  });

  it.each<[string, boolean]>([
    ['gpu-01', true],
    ['ip-10-0-0-1.ec2.internal', true],
    ['*', false],
    ['GPU-01', false],
    ['gpu 01', false],
    ['-gpu', false],
    ['a'.repeat(254), false],
  ])('%s is a node name: %s', (name, valid) => {
    expect(invalidNodeNames([name])).toEqual(valid ? [] : [name]);
  });
});
