import { describe, expect, it } from 'vitest';
import type { V1Node, V1NodeSystemInfo } from '@kubernetes/client-node';
import { actionTimeoutMs, rebootLanded, toOutcome, toWire } from './dispatcher.js';

describe('toWire', () => {
  it('appends Run args to the command', () => {
    expect(toWire({ type: 'Run', run: { command: ['echo', 'a'], args: ['b'] } })).toEqual({
      ok: true,
      wire: { type: 'Run', command: ['echo', 'a', 'b'] },
    });
  });
  it('refuses what the link does not carry', () => {
    expect(toWire({ type: 'Run', run: { command: ['x'], image: 'img' } }).ok).toBe(false);
    expect(toWire({ type: 'InteractiveShell', interactiveShell: { image: 'i' } }).ok).toBe(false);
  });
});

describe('actionTimeoutMs', () => {
  it('defaults to 1h (30m for Reboot) and honours the action', () => {
    expect(actionTimeoutMs({ type: 'Script', script: { script: 'x' } })).toBe(3_600_000);
    expect(actionTimeoutMs({ type: 'Reboot' })).toBe(1_800_000);
    expect(actionTimeoutMs({ type: 'Run', timeout: '90s', run: { command: ['x'] } })).toBe(90_000);
  });
});

describe('toOutcome', () => {
  it('keeps only the status tail and names the failure', () => {
    const o = toOutcome({
      v: 1,
      type: 'action.result',
      id: 'i',
      outcome: 'interrupted',
      message: 'agent restarted',
      outputTail: 'x'.repeat(10_000),
    });
    expect(o.kind).toBe('failed');
    expect(o.kind === 'failed' ? o.message : '').toMatch(/^Interrupted/);
    expect(o.kind === 'failed' ? o.outputTail?.length : 0).toBe(4096);
  });
});

describe('rebootLanded', () => {
  const node = (bootID: string, ready: boolean): V1Node => ({
    status: {
      nodeInfo: { bootID } as V1NodeSystemInfo,
      conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }],
    },
  });
  it('waits for a new bootID and Ready, saying which is missing', () => {
    expect(rebootLanded(node('b1', true), 'b1')).toEqual({ done: false, why: 'bootID still b1' });
    expect(rebootLanded(node('b2', false), 'b1')).toEqual({ done: false, why: 'not Ready' });
    expect(rebootLanded(undefined, 'b1')).toEqual({ done: false, why: 'the Node is gone' });
    expect(rebootLanded(node('b2', true), 'b1')).toEqual({ done: true });
  });
  it('takes Ready alone when no bootID was recorded', () => {
    expect(rebootLanded(node('b1', true), undefined)).toEqual({ done: true });
  });
});
