import { describe, expect, it } from 'vitest';
import { createLogger } from '../../shared/log.js';
import { ClaimPhaseWriter } from './claim-writer.js';
import type { Claim } from './claims.js';

const log = createLogger('test', 'silent');
const claim = (phase: string): Claim => ({ maintenance: 'ns/m', uid: 'u', phase });

/** A Node API whose writes the test ends one by one. */
function slowApi() {
  const calls: { name: string; phase: string; end: (ok?: boolean) => void }[] = [];
  const write = (name: string, c: Claim) =>
    new Promise<void>((resolve, reject) => {
      calls.push({
        name,
        phase: c.phase,
        end: (ok = true) => {
          if (ok) resolve();
          else reject(new Error('503'));
        },
      });
    });
  return { calls, write };
}
const tick = () => new Promise((r) => setTimeout(r, 0));

describe('ClaimPhaseWriter', () => {
  it('has one write in flight per node, then writes only the latest phase', async () => {
    const api = slowApi();
    const w = new ClaimPhaseWriter(api.write, log);
    w.set('a', claim('Draining'));
    w.set('a', claim('Drained'));
    w.set('a', claim('InAction'));
    expect(api.calls.map((c) => c.phase)).toEqual(['Draining']);
    api.calls[0]?.end();
    await tick();
    expect(api.calls.map((c) => c.phase)).toEqual(['Draining', 'InAction']);
    api.calls[1]?.end();
    await w.idle();
  });

  it('bounds the writes in flight over all nodes', async () => {
    const api = slowApi();
    const w = new ClaimPhaseWriter(api.write, log, 2);
    for (const n of ['a', 'b', 'c', 'd']) w.set(n, claim('Draining'));
    expect(api.calls.map((c) => c.name)).toEqual(['a', 'b']);
    api.calls[0]?.end();
    await tick();
    expect(api.calls.map((c) => c.name)).toEqual(['a', 'b', 'c']);
    api.calls[1]?.end();
    api.calls[2]?.end();
    await tick();
    api.calls[3]?.end();
    await w.idle();
    expect(api.calls.map((c) => c.name)).toEqual(['a', 'b', 'c', 'd']);
  });

  it('skips a phase written elsewhere (the cordon) and forgets a released node', async () => {
    const api = slowApi();
    const w = new ClaimPhaseWriter(api.write, log);
    w.written('a', 'Cordoned');
    w.set('a', claim('Cordoned'));
    expect(api.calls).toEqual([]);
    w.set('b', claim('Failed'));
    w.set('b', claim('Pending'));
    w.forget('b'); // restored meanwhile: the queued Pending is not written
    api.calls[0]?.end();
    await w.idle();
    expect(api.calls.map((c) => c.phase)).toEqual(['Failed']);
  });

  it('is best effort: a failed write does not stop the next phase', async () => {
    const api = slowApi();
    const w = new ClaimPhaseWriter(api.write, log);
    w.set('a', claim('Draining'));
    api.calls[0]?.end(false);
    await tick();
    w.set('a', claim('Drained'));
    api.calls[1]?.end();
    await w.idle();
    expect(api.calls.map((c) => c.phase)).toEqual(['Draining', 'Drained']);
  });
});
