import { describe, expect, it } from 'vitest';
import {
  AGENT_SENDS,
  COORDINATOR_SENDS,
  decodeFrame,
  encode,
  MAX_FRAME_BYTES,
  tailBytes,
} from './protocol.js';

const hello = {
  node: 'gpu-01',
  bootID: 'b1',
  version: '0.1.0',
  inventory: null,
  actions: [{ id: 'uid/gpu-01/0/1', state: 'finished' as const }],
};

describe('decodeFrame', () => {
  it('accepts a valid message of the peer', () => {
    const d = decodeFrame(encode('hello', hello), AGENT_SENDS);
    expect(d).toEqual({ ok: true, message: { v: 1, type: 'hello', ...hello } });
  });

  it.each([
    ['not json', '{', 'bad-frame'],
    ['not an object', '[1]', 'bad-frame'],
    ['wrong version', JSON.stringify({ v: 2, type: 'hello' }), 'unsupported-version'],
    ['unknown type', JSON.stringify({ v: 1, type: 'rm -rf' }), 'invalid'],
    ['prototype key as type', JSON.stringify({ v: 1, type: 'constructor' }), 'invalid'],
    ['missing fields', JSON.stringify({ v: 1, type: 'hello', node: 'x' }), 'invalid'],
    [
      'wrong field type',
      JSON.stringify({ v: 1, type: 'action.result', id: 'a', outcome: 'won', message: '' }),
      'invalid',
    ],
  ])('refuses %s', (_name, frame, code) => {
    const d = decodeFrame(frame, AGENT_SENDS);
    expect(d.ok).toBe(false);
    expect(d.ok ? '' : d.code).toBe(code);
  });

  it('refuses a message the peer may not send', () => {
    const start = encode('action.start', {
      id: 'a/b/0/1',
      action: { type: 'Run', command: ['true'] },
      timeoutMs: 1000,
      retryable: false,
    });
    expect(decodeFrame(start, COORDINATOR_SENDS).ok).toBe(true);
    const d = decodeFrame(start, AGENT_SENDS);
    expect(d).toMatchObject({ ok: false, code: 'invalid', ref: 'a/b/0/1' });
  });

  it('refuses frames over the size limit before parsing them', () => {
    const big = JSON.stringify({ v: 1, type: 'heartbeat', pad: 'x'.repeat(MAX_FRAME_BYTES) });
    expect(decodeFrame(big, AGENT_SENDS)).toMatchObject({ ok: false, code: 'too-large' });
    expect(decodeFrame(Buffer.from('{"v":1}'), AGENT_SENDS, 3)).toMatchObject({
      code: 'too-large',
    });
  });

  it('validates the action union by type', () => {
    const frame = (action: unknown) =>
      JSON.stringify({
        v: 1,
        type: 'action.start',
        id: 'i',
        action,
        timeoutMs: 1,
        retryable: false,
      });
    expect(decodeFrame(frame({ type: 'Reboot' }), COORDINATOR_SENDS).ok).toBe(true);
    expect(decodeFrame(frame({ type: 'Run', command: [] }), COORDINATOR_SENDS).ok).toBe(false);
    expect(decodeFrame(frame({ type: 'Script', script: 'x' }), COORDINATOR_SENDS).ok).toBe(false);
  });
});

describe('tailBytes', () => {
  it('keeps the last bytes and never splits a character', () => {
    expect(tailBytes('hello', 10)).toBe('hello');
    expect(tailBytes('hello', 3)).toBe('llo');
    expect(tailBytes('aé€', 4)).toBe('€');
    expect(Buffer.byteLength(tailBytes('€'.repeat(100), 10))).toBeLessThanOrEqual(10);
  });
});
