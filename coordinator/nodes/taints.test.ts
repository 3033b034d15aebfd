import { describe, expect, it } from 'vitest';
import { addTaints, removeOurTaints } from './taints.js';

const foreign = { key: 'example.com/gpu-broken', value: 'true', effect: 'NoSchedule' };
const ours = [
  { key: 'noma.dev/maintenance', effect: 'NoSchedule' },
  { key: 'runai', value: 'drain', effect: 'NoExecute' },
];

describe('taints', () => {
  it('adds only what is missing and keeps every other taint in place', () => {
    const out = addTaints([foreign, { key: 'runai', value: 'other', effect: 'NoExecute' }], ours);
    expect(out).toEqual([
      foreign,
      { key: 'runai', value: 'other', effect: 'NoExecute' },
      { key: 'noma.dev/maintenance', effect: 'NoSchedule' },
    ]);
  });

  it('removes only the taints noma added, not those the node had before', () => {
    const current = [foreign, ...ours];
    expect(removeOurTaints(current, ours, [])).toEqual([foreign]);
    // runai=drain was there before the maintenance: it stays.
    expect(removeOurTaints(current, ours, [ours[1] ?? foreign])).toEqual([foreign, ours[1]]);
  });
});
