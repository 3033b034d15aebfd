import { describe, expect, it } from 'vitest';
import { decideGpuTaint, formatTaint, parseTaint, type GpuTaintView } from './decide.js';

const TAINT = { key: 'noma.dev/gpu-degraded', effect: 'NoSchedule' };
const OURS = { key: 'noma.dev/gpu-degraded', effect: 'NoSchedule' };
const FOREIGN = { key: 'team/hold', value: 'x', effect: 'NoSchedule' };
const RECORD = 'noma.dev/degraded-gpu-taint';

function view(
  health: string | undefined,
  taints: GpuTaintView['taints'],
  record?: string,
): GpuTaintView {
  return {
    labels: health === undefined ? {} : { 'noma.dev/gpu.health': health },
    annotations: record === undefined ? {} : { [RECORD]: record },
    taints,
  };
}

describe('decideGpuTaint', () => {
  it.each([
    {
      what: 'degraded, untainted: taint and record it, keeping other taints',
      view: view('degraded', [FOREIGN]),
      want: {
        action: 'taint',
        taints: [FOREIGN, OURS],
        annotation: 'noma.dev/gpu-degraded:NoSchedule',
      },
    },
    {
      what: 'degraded and already tainted by us: nothing',
      view: view('degraded', [OURS], 'noma.dev/gpu-degraded:NoSchedule'),
      want: undefined,
    },
    {
      what: 'degraded and the same taint put there by someone else: not ours, nothing',
      view: view('degraded', [OURS]),
      want: undefined,
    },
    {
      what: 'healthy again with our taint: remove exactly it and the record',
      view: view('healthy', [FOREIGN, OURS], 'noma.dev/gpu-degraded:NoSchedule'),
      want: { action: 'untaint', taints: [FOREIGN], annotation: null },
    },
    {
      what: 'healthy with the same taint but no record (someone else’s): left alone',
      view: view('healthy', [OURS]),
      want: undefined,
    },
    {
      what: 'healthy, our taint already removed by someone: drop the record only',
      view: view('healthy', [FOREIGN], 'noma.dev/gpu-degraded:NoSchedule'),
      want: { action: 'forget', taints: [FOREIGN], annotation: null },
    },
    {
      what: 'no GPU health label any more (agent gone, CPU node): our taint goes',
      view: view(undefined, [OURS], 'noma.dev/gpu-degraded:NoSchedule'),
      want: { action: 'untaint', taints: [], annotation: null },
    },
    {
      what: 'the flag changed since: the recorded taint is the one removed',
      view: view(
        'healthy',
        [OURS, { key: 'old/taint', effect: 'NoExecute' }],
        'old/taint:NoExecute',
      ),
      want: { action: 'untaint', taints: [OURS], annotation: null },
    },
    {
      what: 'healthy and nothing of ours: nothing',
      view: view('healthy', [FOREIGN]),
      want: undefined,
    },
  ])('$what', ({ view: v, want }) => {
    expect(decideGpuTaint(v, TAINT)).toEqual(want);
  });

  it('writes and reads taints as kubectl does', () => {
    expect(formatTaint({ key: 'a/b', value: 'v', effect: 'NoExecute' })).toBe('a/b=v:NoExecute');
    expect(parseTaint('a/b=v:NoExecute')).toEqual({ key: 'a/b', value: 'v', effect: 'NoExecute' });
    expect(parseTaint('a/b:NoSchedule')).toEqual({ key: 'a/b', effect: 'NoSchedule' });
    expect(parseTaint('garbage')).toBeUndefined();
  });
});
