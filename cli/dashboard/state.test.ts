import type { CoreV1Event, V1Node } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { NodeMaintenance } from '../../shared/api/index.js';
import {
  bounded,
  buildView,
  diffView,
  eventRow,
  livePhases,
  maintenanceEvents,
  maintenanceView,
  nodeRows,
  nodeTile,
  pushDelay,
  tileState,
  timeline,
  type DashboardView,
  type EventRow,
  type SourceName,
  type SourceState,
  type ViewPatch,
} from './state.js';

/** The page's own module (static/, plain JS): the same code the browser runs. */
const model = (await import(new URL('./static/model.js', import.meta.url).href)) as {
  applyPatch: (view: DashboardView, patch: ViewPatch) => DashboardView;
  timelineSegments: (
    marks: readonly { key: string; at: string }[],
    startMs: number,
    endMs: number,
    nowMs: number,
  ) => { key: string; left: number; width: number }[];
  groupTiles: (tiles: DashboardView['tiles']) => { tier: string; sku: string; gpus: number }[];
};

const T0 = '2026-08-01T12:00:00Z';
const at = (s: number) => new Date(Date.parse(T0) + s * 1000).toISOString().replace('.000', '');

interface NodeOpts {
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ready?: 'True' | 'False' | 'Unknown';
  reason?: string;
  unschedulable?: boolean;
  taints?: { key: string; effect: string; value?: string }[];
  gpus?: string;
}

function node(name: string, o: NodeOpts = {}): V1Node {
  return {
    metadata: { name, labels: o.labels ?? {}, annotations: o.annotations ?? {} },
    spec: {
      ...(o.unschedulable === undefined ? {} : { unschedulable: o.unschedulable }),
      ...(o.taints === undefined ? {} : { taints: o.taints }),
    },
    status: {
      capacity: o.gpus === undefined ? {} : { 'nvidia.com/gpu': o.gpus },
      conditions: [
        {
          type: 'Ready',
          status: o.ready ?? 'True',
          ...(o.reason === undefined ? {} : { reason: o.reason }),
          lastTransitionTime: new Date(T0),
        },
      ],
    },
  };
}

const claim = (maintenance: string, phase: string) => ({
  'noma.dev/claim': JSON.stringify({ maintenance, uid: 'u-1', phase }),
});

describe('tileState', () => {
  it.each([
    ['ready', { inMaintenance: false, ready: true, gpuHealth: 'healthy', schedulable: true }],
    ['cordoned', { inMaintenance: false, ready: true, gpuHealth: undefined, schedulable: false }],
    ['degraded', { inMaintenance: false, ready: true, gpuHealth: 'degraded', schedulable: false }],
    ['down', { inMaintenance: false, ready: false, gpuHealth: 'degraded', schedulable: false }],
    // A node rebooted by its maintenance is NotReady on purpose: the maintenance says more.
    [
      'maintenance',
      { inMaintenance: true, ready: false, gpuHealth: 'degraded', schedulable: false },
    ],
    ['maintenance', { inMaintenance: true, ready: true, gpuHealth: undefined, schedulable: true }],
  ] as const)('%s: %j', (state, facts) => {
    expect(tileState(facts)).toBe(state);
  });
});

describe('nodeTile', () => {
  const gpuLabels = { 'hardware.tier': 'training', 'gpu.h100': 'true' };
  const live = [{ maintenance: 'ops/reboot', phase: 'Draining', step: null }];
  it.each<[string, V1Node, Parameters<typeof nodeTile>[1], Partial<ReturnType<typeof nodeTile>>]>([
    [
      'a ready GPU node: tier and SKU from the agent’s labels',
      node('gpu-01', { labels: gpuLabels, gpus: '8' }),
      [],
      {
        state: 'ready',
        label: 'Ready',
        tier: 'training',
        sku: 'h100',
        gpus: 8,
        agent: 'unknown',
        phase: null,
      },
    ],
    [
      'cordoned by someone',
      node('gpu-02', { unschedulable: true }),
      [],
      { state: 'cordoned', label: 'Cordoned', tier: null, sku: null, schedulable: false },
    ],
    [
      'down: NotReady, with the reason and since when',
      node('gpu-03', { ready: 'Unknown', reason: 'NodeStatusUnknown' }),
      [],
      {
        state: 'down',
        label: 'Down',
        readyReason: 'NodeStatusUnknown',
        downSince: '2026-08-01T12:00:00.000Z',
      },
    ],
    [
      'GPU degraded, and the agent has written its labels',
      node('gpu-04', {
        labels: { 'noma.dev/gpu.health': 'degraded' },
        annotations: { 'noma.dev/managed-labels': 'noma.dev/gpu.health' },
      }),
      [],
      { state: 'degraded', label: 'GPU degraded', gpuHealth: 'degraded', agent: 'labeled' },
    ],
    [
      'claimed: the phase is the maintenance status’s, fresher than the claim’s',
      node('gpu-05', { annotations: claim('ops/reboot', 'Cordoned'), unschedulable: true }),
      [{ maintenance: 'ops/reboot', phase: 'InAction', step: '2/3 Reboot' }],
      {
        state: 'maintenance',
        label: 'InAction',
        phase: 'InAction',
        maintenance: 'ops/reboot',
        step: '2/3 Reboot',
      },
    ],
    [
      'claimed, and not in that maintenance’s status yet: the claim’s phase',
      node('gpu-06', { annotations: claim('ops/other', 'Cordoned') }),
      live,
      { state: 'maintenance', label: 'Cordoned', phase: 'Cordoned', maintenance: 'ops/other' },
    ],
    [
      'claimed, and its status entry not written since: the claim’s phase over Pending',
      node('gpu-11', { annotations: claim('ops/reboot', 'Cordoned') }),
      [{ maintenance: 'ops/reboot', phase: 'Pending', step: null }],
      { state: 'maintenance', label: 'Cordoned', phase: 'Cordoned' },
    ],
    [
      'rebooting in its maintenance: NotReady, still a maintenance tile',
      node('gpu-07', { annotations: claim('ops/reboot', 'Cordoned'), ready: 'False' }),
      live,
      { state: 'maintenance', label: 'Draining', ready: false },
    ],
    [
      'only the maintenance taint: in maintenance, phase unknown',
      node('gpu-08', { taints: [{ key: 'noma.dev/maintenance', effect: 'NoSchedule' }] }),
      [],
      { state: 'maintenance', label: 'In maintenance', phase: null, maintenance: null },
    ],
    [
      'a status entry but no mark on the node (it left): not in maintenance',
      node('gpu-09'),
      live,
      { state: 'ready', phase: null, maintenance: null, step: null },
    ],
    [
      'the downtime taint the coordinator recorded',
      node('gpu-10', {
        ready: 'False',
        taints: [{ key: 'runai', value: 'drain', effect: 'NoExecute' }],
        annotations: {
          'noma.dev/unplanned-downtime': JSON.stringify({
            taint: { key: 'runai', value: 'drain', effect: 'NoExecute' },
            taintedAt: T0,
          }),
        },
      }),
      [],
      { state: 'down', downtimeTaint: 'runai=drain:NoExecute' },
    ],
  ])('%s', (_, n, liveEntries, expected) => {
    expect(nodeTile(n, liveEntries)).toMatchObject(expected);
  });
});

const maintenance = (over: Partial<NodeMaintenance> = {}): NodeMaintenance => ({
  apiVersion: 'noma.dev/v1alpha1',
  kind: 'NodeMaintenance',
  metadata: { name: 'reboot', namespace: 'ops', creationTimestamp: T0 },
  spec: {
    operationName: 'reboot',
    linearTicket: 'ENG-7',
    nodeSelector: 'hardware.tier=training',
    actions: [
      { type: 'Script', name: 'upgrade.sh', script: { script: 'true' } },
      { type: 'Reboot' },
      { type: 'Complete' },
    ],
  },
  status: {
    phase: 'Running',
    progress: '1/4',
    startedAt: at(1),
    observedNodes: ['a', 'b', 'c', 'd'],
    conditions: [
      {
        type: 'Stuck',
        status: 'True',
        reason: 'NoProgress',
        message: '1 node(s) stuck: c: no progress for 10m',
      },
    ],
    nodes: [
      {
        name: 'a',
        phase: 'Succeeded',
        phaseTimes: { scheduled: at(1), cordoned: at(1), drained: at(5), completed: at(60) },
      },
      {
        name: 'b',
        phase: 'Draining',
        drain: {
          total: 4,
          evicted: 1,
          pending: 3,
          blockedBy: {
            kind: 'PodDisruptionBudget',
            namespace: 'infer',
            name: 'llm',
            message: 'Cannot evict pod as it would violate the pod’s disruption budget.',
          },
        },
        phaseTimes: { scheduled: at(1), cordoned: at(2) },
      },
      { name: 'c', phase: 'InAction', currentActionIndex: 1, currentActionType: 'Reboot' },
    ],
  },
  ...over,
});

describe('livePhases and nodeRows', () => {
  it('lists each node’s phase and step, by node', () => {
    expect(livePhases([maintenance()]).get('c')).toEqual([
      { maintenance: 'ops/reboot', phase: 'InAction', step: '2/3 Reboot' },
    ]);
  });

  it('a row per reported node, then the selected ones not started (Pending)', () => {
    const rows = nodeRows(maintenance());
    expect(rows.map((r) => [r.node, r.phase, r.stuck, r.step])).toEqual([
      ['a', 'Succeeded', false, null],
      ['b', 'Draining', false, null],
      ['c', 'InAction', true, '2/3 Reboot'],
      ['d', 'Pending', false, null],
    ]);
    expect(rows[1]?.drain).toEqual({
      total: 4,
      evicted: 1,
      pending: 3,
      blockedBy: 'PodDisruptionBudget infer/llm',
      blockedReason: 'Cannot evict pod as it would violate the pod’s disruption budget.',
    });
    expect(rows[0]?.timeline.map((m) => m.key)).toEqual([
      'scheduled',
      'cordoned',
      'drained',
      'completed',
    ]);
  });

  it('names the step by its name when it has one', () => {
    const m = maintenance();
    const n = m.status?.nodes?.[2];
    if (n === undefined) throw new Error('fixture');
    expect(
      nodeRows({ ...m, status: { ...m.status, nodes: [{ ...n, currentActionIndex: 0 }] } })[0]
        ?.step,
    ).toBe('1/3 upgrade.sh');
  });
});

describe('timeline', () => {
  it.each([
    ['none', undefined, []],
    [
      'in time order: a retry overwrote actionStarted after failed',
      { scheduled: at(0), actionStarted: at(30), failed: at(20) },
      ['scheduled', 'failed', 'actionStarted'],
    ],
    [
      'equal times keep the order a node goes through them',
      { drained: at(5), cordoned: at(5), scheduled: at(5) },
      ['scheduled', 'cordoned', 'drained'],
    ],
    [
      'a time that does not parse is left out',
      { scheduled: 'yesterday', cordoned: at(1) },
      ['cordoned'],
    ],
  ] as const)('%s', (_, times, keys) => {
    expect(timeline(times).map((m) => m.key)).toEqual(keys);
  });
});

function event(
  o: Partial<CoreV1Event> & { kind: string; name: string; namespace?: string; rv?: string },
): CoreV1Event {
  const { kind, name, namespace, rv, ...rest } = o;
  return {
    metadata: {
      name: `${name}.1`,
      namespace: namespace ?? 'default',
      uid: `uid-${name}-${rest.reason ?? ''}`,
      ...(rv === undefined ? {} : { resourceVersion: rv }),
    },
    involvedObject: { kind, name, ...(namespace === undefined ? {} : { namespace }) },
    ...rest,
  };
}

describe('eventRow', () => {
  it.each<[string, CoreV1Event, Partial<EventRow>]>([
    [
      'core/v1 Event: last occurrence, count, source component',
      event({
        kind: 'Node',
        name: 'a',
        type: 'Warning',
        reason: 'NodeNotReady',
        message: 'Node a status is now: NodeNotReady',
        firstTimestamp: new Date(at(1)),
        lastTimestamp: new Date(at(9)),
        count: 3,
        source: { component: 'node-controller' },
      }),
      { at: '2026-08-01T12:00:09.000Z', count: 3, source: 'node-controller', kind: 'Node' },
    ],
    [
      'events.k8s.io-style: eventTime and series, reportingComponent',
      event({
        kind: 'NodeMaintenance',
        name: 'reboot',
        namespace: 'ops',
        eventTime: new Date(at(2)),
        series: { count: 5, lastObservedTime: new Date(at(20)) },
        reportingComponent: 'noma-coordinator',
      }),
      { at: '2026-08-01T12:00:20.000Z', count: 5, source: 'noma-coordinator', type: 'Normal' },
    ],
    [
      'a long message is cut, on one line',
      event({ kind: 'Node', name: 'a', message: `line one\n${'x'.repeat(500)}` }),
      { message: `line one ${'x'.repeat(290)}…` },
    ],
  ])('%s', (_, e, expected) => {
    expect(eventRow(e)).toMatchObject(expected);
  });
});

describe('maintenanceEvents', () => {
  const rows = [
    event({
      kind: 'NodeMaintenance',
      name: 'reboot',
      namespace: 'ops',
      reason: 'Started',
      lastTimestamp: new Date(at(1)),
    }),
    event({
      kind: 'NodeMaintenance',
      name: 'reboot',
      namespace: 'other',
      reason: 'Elsewhere',
      lastTimestamp: new Date(at(2)),
    }),
    event({
      kind: 'NodeMaintenance',
      name: 'x',
      namespace: 'ops',
      reason: 'NotOurs',
      lastTimestamp: new Date(at(3)),
    }),
    event({ kind: 'Node', name: 'b', reason: 'Cordoned', lastTimestamp: new Date(at(4)) }),
    event({ kind: 'Node', name: 'd', reason: 'Before', lastTimestamp: new Date(at(-60)) }),
    event({ kind: 'Node', name: 'zz', reason: 'OtherNode', lastTimestamp: new Date(at(5)) }),
  ].map(eventRow);

  it('its own Events and its nodes’ since it was created, newest first', () => {
    expect(maintenanceEvents(maintenance(), rows).map((e) => e.reason)).toEqual([
      'Cordoned',
      'Started',
    ]);
  });

  it('Events of the same second in the order they were stored, the latest first', () => {
    const second = new Date(at(7));
    const stored = ['Cordoned', 'Drained', 'ActionStarted'].map((reason, i) =>
      eventRow(
        event({ kind: 'Node', name: 'a', reason, lastTimestamp: second, rv: String(900 + i * 50) }),
      ),
    );
    expect(maintenanceEvents(maintenance(), stored).map((e) => e.reason)).toEqual([
      'ActionStarted',
      'Drained',
      'Cordoned',
    ]);
  });

  it('at most 15', () => {
    const many = Array.from({ length: 40 }, (_, i) =>
      eventRow(event({ kind: 'Node', name: 'a', reason: `R${i}`, lastTimestamp: new Date(at(i)) })),
    );
    const shown = maintenanceEvents(maintenance(), many);
    expect(shown).toHaveLength(15);
    expect(shown[0]?.reason).toBe('R39');
  });
});

const live: SourceState = { state: 'live', error: null };
const sources = (over: Partial<Record<SourceName, SourceState>> = {}) => ({
  nodes: live,
  maintenances: live,
  maintenanceEvents: live,
  nodeEvents: live,
  ...over,
});
const meta = {
  context: 'prod',
  user: 'ann',
  server: 'https://k',
  namespace: null,
  selector: null,
  version: '0.1.0',
};

describe('buildView', () => {
  it('tiles by name, maintenances checked against the schema, node Events of shown nodes', () => {
    const broken = {
      apiVersion: 'noma.dev/v1alpha1',
      kind: 'NodeMaintenance',
      metadata: { name: 'bad', namespace: 'ops' },
      spec: {},
    };
    const view = buildView({
      meta,
      nodes: [node('c', { annotations: claim('ops/reboot', 'Cordoned') }), node('a'), node('b')],
      maintenances: [maintenance(), broken],
      events: [
        event({ kind: 'Node', name: 'a', reason: 'Shown', lastTimestamp: new Date(at(1)) }),
        event({
          kind: 'Node',
          name: 'elsewhere',
          reason: 'Hidden',
          lastTimestamp: new Date(at(2)),
        }),
      ],
      sources: sources(),
    });
    expect(view.tiles.map((t) => [t.name, t.state, t.label])).toEqual([
      ['a', 'ready', 'Ready'],
      ['b', 'ready', 'Ready'],
      ['c', 'maintenance', 'InAction'],
    ]);
    expect(view.maintenances.map((m) => m.key)).toEqual(['ops/reboot']);
    expect(view.warnings).toHaveLength(1);
    expect(view.warnings[0]).toMatch(
      /^warning: ops\/bad does not match the NodeMaintenance schema/,
    );
    expect(view.nodeEvents.map((e) => e.reason)).toEqual(['Shown']);
  });

  it('a maintenance: its facts, steps by name, conditions, rows and Events', () => {
    const v = maintenanceView(maintenance({ spec: { ...maintenance().spec, paused: true } }), []);
    expect(v).toMatchObject({
      key: 'ops/reboot',
      phase: 'Running',
      progress: '1/4',
      ticket: 'ENG-7',
      steps: ['upgrade.sh', 'Reboot', 'Complete'],
      paused: true,
      startedAt: at(1),
      completedAt: null,
    });
    expect(v.conditions[0]).toMatchObject({ type: 'Stuck', status: 'True', reason: 'NoProgress' });
  });
});

describe('diffView, and the page’s applyPatch', () => {
  const view = (nodes: V1Node[], ms: NodeMaintenance[] = [], src = sources()) =>
    buildView({ meta, nodes, maintenances: ms, events: [], sources: src });

  it('nothing changed: no patch', () => {
    expect(diffView(view([node('a')]), view([node('a')]))).toBeUndefined();
  });

  it('one node changed: only its tile', () => {
    const patch = diffView(
      view([node('a'), node('b')]),
      view([node('a'), node('b', { unschedulable: true })]),
    );
    expect(patch).toEqual({
      tiles: { set: [expect.objectContaining({ name: 'b', state: 'cordoned' })], del: [] },
    });
  });

  it('a node gone, a source in trouble', () => {
    const next = view(
      [node('a')],
      [],
      sources({ nodes: { state: 'trouble', error: 'HTTP 403: forbidden' } }),
    );
    const patch = diffView(view([node('a'), node('b')]), next);
    expect(patch?.tiles).toEqual({ set: [], del: ['b'] });
    expect(patch?.sources?.nodes).toEqual({ state: 'trouble', error: 'HTTP 403: forbidden' });
  });

  it('applyPatch (static/model.js) turns each view into the next, along a maintenance', () => {
    const m = maintenance();
    const steps: DashboardView[] = [
      view([node('a'), node('b'), node('c')]),
      view([node('a'), node('b', { unschedulable: true }), node('c')]),
      view(
        [node('a', { annotations: claim('ops/reboot', 'Cordoned') }), node('b'), node('c')],
        [m],
      ),
      view(
        [node('a'), node('c'), node('d')],
        [{ ...m, status: { ...m.status, phase: 'Completed' } }],
      ),
      view([], []),
    ];
    let page = steps[0] as DashboardView;
    for (const next of steps.slice(1)) {
      const patch = diffView(page, next);
      page = patch === undefined ? page : model.applyPatch(page, patch);
      expect(page).toEqual(next);
    }
  });
});

describe('the page’s drawing helpers (static/model.js)', () => {
  it('timeline segments: each mark until the next, the last until now unless final', () => {
    const marks = [
      { key: 'scheduled', at: at(0) },
      { key: 'cordoned', at: at(10) },
      { key: 'drained', at: at(50) },
    ];
    const start = Date.parse(at(0));
    const segs = model.timelineSegments(marks, start, start + 100_000, start + 100_000);
    expect(segs.map((s) => [s.key, s.left, Math.round(s.width)])).toEqual([
      ['scheduled', 0, 10],
      ['cordoned', 10, 40],
      ['drained', 50, 50],
    ]);
    const done = model.timelineSegments(
      [...marks, { key: 'completed', at: at(60) }],
      start,
      start + 100_000,
      start + 100_000,
    );
    expect(done.at(-1)).toMatchObject({ key: 'completed', left: 60, width: 0 });
  });

  it('groups by tier, then SKU; nodes without a tier last', () => {
    const tiles = buildView({
      meta,
      nodes: [
        node('x'),
        node('b', { labels: { 'hardware.tier': 'training', 'gpu.h100': 'true' }, gpus: '8' }),
        node('a', { labels: { 'hardware.tier': 'inference', 'gpu.l40s': 'true' }, gpus: '4' }),
        node('c', { labels: { 'hardware.tier': 'training', 'gpu.h100': 'true' }, gpus: '8' }),
      ],
      maintenances: [],
      events: [],
      sources: sources(),
    }).tiles;
    expect(model.groupTiles(tiles).map((g) => [g.tier, g.sku, g.gpus])).toEqual([
      ['inference', 'l40s', 4],
      ['training', 'h100', 16],
      ['no tier', 'no GPU SKU', 0],
    ]);
  });
});

describe('small rules', () => {
  it.each([
    [undefined, 0, 250, 0],
    [1000, 1100, 250, 150],
    [1000, 1250, 250, 0],
    [1000, 5000, 250, 0],
  ])('pushDelay(last %s, now %s, min %s) = %s', (last, now, min, delay) => {
    expect(pushDelay(last, now, min)).toBe(delay);
  });

  it.each([
    [undefined, null],
    ['  ', null],
    ['a\n  b', 'a b'],
    ['x'.repeat(10), 'x'.repeat(10)],
    ['x'.repeat(11), `${'x'.repeat(9)}…`],
  ])('bounded(%j, 10) = %j', (text, out) => {
    expect(bounded(text, 10)).toBe(out);
  });
});
