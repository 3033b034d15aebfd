import type { V1Node } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { CLAIM_ANNOTATION, DOWNTIME_ANNOTATION } from '../../shared/maintenance-keys.js';
import {
  capOf,
  decideFleet,
  decideNode,
  formatRecord,
  nodeFacts,
  recordOf,
  type DowntimeConfig,
  type DowntimeRecord,
  type NodeFacts,
} from './decide.js';
import { parseSelector } from './selector.js';

const NOW = 1_000_000_000;
const cfg: DowntimeConfig = {
  afterMs: 600_000,
  settleMs: 60_000,
  maxNodes: { percent: 10 },
  taint: { key: 'runai', value: 'drain', effect: 'NoExecute' },
};
const record: DowntimeRecord = {
  taint: cfg.taint,
  downSince: '2026-01-01T00:00:00.000Z',
  taintedAt: '2026-01-01T00:10:00.000Z',
  agent: true,
};

const base: NodeFacts = {
  name: 'n1',
  ready: true,
  notReadySince: undefined,
  readySince: NOW - 3_600_000,
  claimed: false,
  record: undefined,
  tainted: false,
  agentConnected: true,
  hadAgent: true,
};
const down = (forMs: number, more: Partial<NodeFacts> = {}): NodeFacts => ({
  ...base,
  ready: false,
  readySince: undefined,
  notReadySince: NOW - forMs,
  agentConnected: false,
  ...more,
});
const back = (forMs: number, more: Partial<NodeFacts> = {}): NodeFacts => ({
  ...base,
  readySince: NOW - forMs,
  record,
  tainted: true,
  ...more,
});

describe('decideNode', () => {
  it.each<[string, NodeFacts, boolean, unknown]>([
    ['a Ready node: nothing', base, false, { action: 'none' }],
    ['down, not yet long enough', down(599_000), false, { action: 'none' }],
    ['down exactly the threshold: not longer', down(600_000), false, { action: 'none' }],
    ['down longer: taint', down(600_001), false, { action: 'taint', downForMs: 600_001 }],
    [
      'down longer in a partition: hold',
      down(700_000),
      true,
      { action: 'hold', reason: 'partition' },
    ],
    [
      'down longer, the same taint set by someone else: not ours',
      down(700_000, { tainted: true }),
      false,
      { action: 'hold', reason: 'foreign-taint' },
    ],
    [
      'down, in a maintenance: left to it',
      down(700_000, { claimed: true }),
      false,
      { action: 'hold', reason: 'claimed' },
    ],
    ['Ready, in a maintenance: nothing', { ...base, claimed: true }, false, { action: 'none' }],
    [
      'tainted by us, claimed since: left to the maintenance',
      back(120_000, { claimed: true }),
      false,
      { action: 'hold', reason: 'claimed' },
    ],
    [
      'tainted by us and still down: hold',
      down(900_000, { record, tainted: true }),
      false,
      { action: 'hold', reason: 'down' },
    ],
    ['back, settling', back(59_999), false, { action: 'hold', reason: 'settling' }],
    [
      'back and settled, agent back: untaint',
      back(60_000),
      false,
      { action: 'untaint', readyForMs: 60_000 },
    ],
    [
      'back and settled in a partition: untaint all the same',
      back(60_000),
      true,
      { action: 'untaint', readyForMs: 60_000 },
    ],
    [
      'back and settled, its agent not reconnected: hold',
      back(120_000, { agentConnected: false }),
      false,
      { action: 'hold', reason: 'agent' },
    ],
    [
      'back and settled, never had an agent: Ready alone',
      back(120_000, { agentConnected: false, record: { ...record, agent: false } }),
      false,
      { action: 'untaint', readyForMs: 120_000 },
    ],
    [
      'our taint removed by hand while down: not re-added',
      down(900_000, { record }),
      false,
      { action: 'hold', reason: 'taint-removed' },
    ],
    [
      'our taint removed by hand, node back: forget the record',
      back(1_000, { tainted: false }),
      false,
      { action: 'forget' },
    ],
  ])('%s', (_what, facts, partition, want) => {
    expect(decideNode(facts, NOW, cfg, partition)).toEqual(want);
  });
});

describe('capOf and the fleet', () => {
  it.each<[DowntimeConfig['maxNodes'], number, number]>([
    [{ percent: 10 }, 100, 10],
    [{ percent: 10 }, 19, 1],
    [{ percent: 10 }, 5, 1],
    [{ percent: 0 }, 100, 1],
    [{ count: 3 }, 2, 3],
    [{ count: 0 }, 50, 1],
  ])('%o of %i nodes: at most %i down', (max, total, want) => {
    expect(capOf(max, total)).toBe(want);
  });

  it('taints none while more than the cap are down, and counts no claimed node', () => {
    const c = { ...cfg, maxNodes: { count: 2 } };
    const fleet = [
      down(700_000, { name: 'a' }),
      down(700_000, { name: 'b' }),
      down(10_000, { name: 'c' }),
      back(120_000, { name: 'd' }),
      down(700_000, { name: 'e', claimed: true }),
    ];
    const out = decideFleet(fleet, NOW, c);
    expect(out.fleet).toEqual({ total: 5, notReady: 3, cap: 2, partition: true });
    expect(out.decisions.map((d) => [d.name, d.decision.action])).toEqual([
      ['a', 'hold'],
      ['b', 'hold'],
      ['c', 'none'],
      ['d', 'untaint'],
      ['e', 'hold'],
    ]);
    // One node fewer down: no partition, the two long-down nodes get the taint.
    const fewer = decideFleet(fleet.slice(1), NOW, c);
    expect(fewer.fleet.partition).toBe(false);
    expect(fewer.decisions.filter((d) => d.decision.action === 'taint').map((d) => d.name)).toEqual(
      ['b'],
    );
  });
});

const node = (over: {
  ready?: 'True' | 'False' | 'Unknown' | undefined;
  since?: string;
  annotations?: Record<string, string>;
  taints?: { key: string; value?: string; effect: string }[];
}): V1Node => ({
  metadata: {
    name: 'n1',
    creationTimestamp: new Date('2026-01-01T00:00:00Z'),
    ...(over.annotations === undefined ? {} : { annotations: over.annotations }),
  },
  spec: { taints: over.taints ?? [] },
  status: {
    conditions:
      over.ready === undefined
        ? []
        : [
            {
              type: 'Ready',
              status: over.ready,
              lastTransitionTime: new Date(over.since ?? '2026-01-01T01:00:00Z'),
            },
          ],
  },
});

describe('nodeFacts and the record', () => {
  const seen = { agentConnected: false, hadAgent: true, firstSeen: NOW };
  it('a node down: since the earlier of its transition and what this process saw', () => {
    const t = Date.parse('2026-01-01T01:00:00Z');
    const f = nodeFacts(node({ ready: 'Unknown' }), { ...seen, firstSeen: t - 5_000 }, cfg);
    expect(f).toMatchObject({ ready: false, notReadySince: t - 5_000, readySince: undefined });
    expect(
      nodeFacts(node({ ready: 'False' }), { ...seen, firstSeen: t + 9_000 }, cfg).notReadySince,
    ).toBe(t);
  });

  it('a node without a Ready condition is down since it was created', () => {
    const f = nodeFacts(node({}), { ...seen, firstSeen: Date.parse('2026-02-01T00:00:00Z') }, cfg);
    expect(f.notReadySince).toBe(Date.parse('2026-01-01T00:00:00Z'));
  });

  it('reads claim, record and taint; a record that does not parse is none', () => {
    const f = nodeFacts(
      node({
        ready: 'True',
        annotations: { [CLAIM_ANNOTATION]: '{}', [DOWNTIME_ANNOTATION]: formatRecord(record) },
        taints: [{ key: 'runai', value: 'other', effect: 'NoExecute' }],
      }),
      seen,
      cfg,
    );
    expect(f).toMatchObject({ ready: true, claimed: true, record, tainted: true });
    expect(recordOf(node({ annotations: { [DOWNTIME_ANNOTATION]: 'nope' } }))).toBeUndefined();
    expect(
      recordOf(node({ annotations: { [DOWNTIME_ANNOTATION]: '{"taint":{}}' } })),
    ).toBeUndefined();
  });

  it('judges the taint by the record, not by the flag (the flag may have changed since)', () => {
    const old = { ...record, taint: { key: 'noma.dev/unreachable', effect: 'NoExecute' } };
    const f = nodeFacts(
      node({
        ready: 'True',
        annotations: { [DOWNTIME_ANNOTATION]: formatRecord(old) },
        taints: [{ key: 'noma.dev/unreachable', effect: 'NoExecute' }],
      }),
      seen,
      cfg,
    );
    expect(f.tainted).toBe(true);
    expect(f.record?.taint.key).toBe('noma.dev/unreachable');
  });
});

describe('parseSelector', () => {
  it.each<[string, Record<string, string> | undefined, boolean | undefined]>([
    ['', undefined, true],
    ['a=b', { a: 'b' }, true],
    ['a==b', { a: 'c' }, false],
    ['a!=b', { a: 'c' }, true],
    ['a!=b', undefined, true],
    ['noma.dev/test', { 'noma.dev/test': '' }, true],
    ['!noma.dev/test', { 'noma.dev/test': 'x' }, false],
    ['a=b, c', { a: 'b' }, false],
    ['a=b,c', { a: 'b', c: '1' }, true],
    ['a=b c', {}, undefined],
    ['=b', {}, undefined],
  ])('%j on %j', (text, labels, want) => {
    const p = parseSelector(text);
    expect(p === undefined ? undefined : p(labels)).toBe(want);
  });
});
