import { describe, expect, it } from 'vitest';
import type { NodeMaintenance } from '../../shared/api/index.js';
import {
  age,
  checkMaintenances,
  renderStatus,
  statusDocument,
  stuckNodes,
  withoutManagedFields,
} from './render.js';

const now = new Date('2026-08-01T12:00:00Z');

const running: NodeMaintenance = {
  apiVersion: 'noma.dev/v1alpha1',
  kind: 'NodeMaintenance',
  metadata: {
    name: 'driver-upgrade',
    namespace: 'gpu-ops',
    creationTimestamp: '2026-08-01T11:35:00Z',
  },
  spec: {
    operationName: 'driver-upgrade',
    linearTicket: 'ENG-1234',
    nodeSelector: 'kubernetes.io/hostname in (gpu-01,gpu-02,gpu-03,gpu-04)',
    actions: [
      { type: 'Script', name: 'upgrade.sh', script: { script: 'true' } },
      { type: 'Reboot' },
      { type: 'Complete' },
    ],
  },
  status: {
    phase: 'Running',
    progress: '1/4',
    observedNodes: ['gpu-01', 'gpu-02', 'gpu-03', 'gpu-04'],
    conditions: [
      { type: 'Degraded', status: 'True', reason: 'NodeFailed', message: 'gpu-03 failed' },
    ],
    nodes: [
      { name: 'gpu-01', phase: 'Succeeded', lastExitCode: 0 },
      {
        name: 'gpu-02',
        phase: 'Draining',
        drain: {
          total: 5,
          evicted: 3,
          pending: 2,
          blockedBy: {
            kind: 'PodDisruptionBudget',
            namespace: 'infer',
            name: 'llm-pdb',
            message: 'would violate the budget',
          },
        },
      },
      {
        name: 'gpu-03',
        phase: 'Failed',
        currentActionIndex: 0,
        currentActionType: 'Script',
        lastExitCode: 3,
        message: 'script exited with 3:\napt: unable to locate package',
      },
    ],
  },
};

describe('renderStatus', () => {
  it('shows a maintenance in progress node by node', () => {
    expect(renderStatus([running], now)).toBe(
      [
        'gpu-ops/driver-upgrade   Running   nodes 1/4   ticket ENG-1234   age 25m',
        '  selector: kubernetes.io/hostname in (gpu-01,gpu-02,gpu-03,gpu-04)',
        '  steps:    upgrade.sh → Reboot → Complete',
        '  Degraded=True NodeFailed: gpu-03 failed',
        '  NODE     PHASE       ACTION       DRAIN          BLOCKED BY                          EXIT   MESSAGE',
        '  gpu-01   Succeeded   -            -              -                                   0      -',
        '  gpu-02   Draining    -            3/5 (2 left)   PodDisruptionBudget infer/llm-pdb   -      would violate the budget',
        '  gpu-03   Failed      1/3 Script   -              -                                   3      script exited with 3: apt: unable to locate package',
        '  gpu-04   Pending     -            -              -                                   -      -',
        '',
      ].join('\n'),
    );
  });

  it('prints the commands of an open InteractiveShell in full', () => {
    const exec = 'kubectl -n noma-system exec -it noma-gpu-01-0-0123456789 -c shell -- /bin/sh';
    const release =
      'kubectl -n gpu-ops annotate nodemaintenances.noma.dev debug noma.dev/release=gpu-01/0 --overwrite';
    const shell: NodeMaintenance = {
      ...running,
      spec: {
        ...running.spec,
        actions: [{ type: 'InteractiveShell', interactiveShell: { image: 'd' } }],
      },
      status: {
        phase: 'Running',
        nodes: [
          {
            name: 'gpu-01',
            phase: 'InAction',
            currentActionIndex: 0,
            currentActionType: 'InteractiveShell',
            job: {
              pod: 'noma-gpu-01-0-0123456789',
              namespace: 'noma-system',
              timeoutAt: '2026-08-02T12:00:00Z',
              execCommand: exec,
              releaseCommand: release,
            },
          },
          { name: 'gpu-02', phase: 'Succeeded' },
        ],
      },
    };
    const text = renderStatus([shell], now);
    expect(text).toContain(`  gpu-01 shell:   ${exec}\n  gpu-01 release: ${release}\n`);
    expect(text).not.toContain('gpu-02 shell');
  });

  it.each<[string, Partial<NodeMaintenance['spec']>, string, Record<string, string>, string[]]>([
    [
      'paused',
      { paused: true },
      'Paused',
      {},
      [
        '  paused: no node starts or begins its next step; `noma resume driver-upgrade -n gpu-ops` goes on',
      ],
    ],
    [
      'pausing',
      { paused: true },
      'Running',
      {},
      ['  pausing: spec.paused is set; steps in flight finish first'],
    ],
    [
      'halted, with restores and retries queued',
      {},
      'Halted',
      { 'noma.dev/restore': 'gpu-03,*', 'noma.dev/retry': 'gpu-04' },
      [
        '  halted: too many nodes failed; `noma restore|retry driver-upgrade -n gpu-ops --node NODE` or raise options.maxFailedNodes',
        '  queued restore: gpu-03, every failed node',
        '  queued retry: gpu-04',
      ],
    ],
    ['running, nothing held', { paused: false }, 'Running', {}, []],
  ])('says what holds it: %s', (_what, spec, phase, annotations, lines) => {
    const m: NodeMaintenance = {
      ...running,
      metadata: { ...running.metadata, annotations },
      spec: { ...running.spec, ...spec },
      status: { ...running.status, phase: phase as 'Running' },
    };
    const text = renderStatus([m], now);
    const after = text.split('\n').slice(4); // summary, selector, steps, the Degraded condition
    expect(after.slice(0, lines.length + 1)).toEqual([
      ...lines,
      expect.stringMatching(/^ {2}NODE /),
    ]);
  });

  it('highlights Stuck nodes: a line above the table and their PHASE cell', () => {
    const stuck: NodeMaintenance = {
      ...running,
      status: {
        ...running.status,
        conditions: [
          {
            type: 'Stuck',
            status: 'True',
            reason: 'NodesStuck',
            message:
              '1 node(s) stuck: gpu-02: Draining for 2h without progress, drain blocked by PodDisruptionBudget infer/llm-pdb',
          },
        ],
      },
    };
    const out = renderStatus([stuck], now);
    expect(out).toContain(
      "  STUCK: 1 node(s) stuck: gpu-02: Draining for 2h without progress, drain blocked by PodDisruptionBudget infer/llm-pdb (no progress for longer than the coordinator's --stuck-after; see the node's Events)",
    );
    expect(out).toMatch(/^ {2}gpu-02 +Draining STUCK +-/m);
    expect(out).toMatch(/^ {2}gpu-01 +Succeeded +-/m);
  });

  it.each([
    [
      '3 node(s) stuck: a: Draining for 2h; b-1.x: step 0 (flash) for 3h; c: Cordoned for 2h',
      ['a', 'b-1.x', 'c'],
    ],
    ['5 node(s) stuck: a: x; b: y; c: z; and 2 more', ['a', 'b', 'c']],
    ['no node is stuck', []],
  ])('reads the stuck nodes from the condition: %s', (message, names) => {
    const m: NodeMaintenance = {
      ...running,
      status: { conditions: [{ type: 'Stuck', status: 'True', reason: 'NodesStuck', message }] },
    };
    expect([...stuckNodes(m)]).toEqual(names);
  });

  it('shows a Restored node as such', () => {
    const m: NodeMaintenance = {
      ...running,
      status: { ...running.status, nodes: [{ name: 'gpu-03', phase: 'Restored' }] },
    };
    expect(renderStatus([m], now)).toMatch(/^ {2}gpu-03 +Restored +- +- +- +- +-$/m);
  });

  it('says when the coordinator has not picked a maintenance up', () => {
    const fresh = { ...running };
    delete fresh.status;
    expect(renderStatus([fresh], now)).toContain('not started: no status yet');
  });

  it('sorts several maintenances and says when there are none', () => {
    const other = { ...running, metadata: { ...running.metadata, namespace: 'a-team' } };
    const text = renderStatus([running, other], now);
    expect(text.indexOf('a-team/')).toBeLessThan(text.indexOf('gpu-ops/'));
    expect(renderStatus([], now)).toBe('no NodeMaintenances\n');
  });
});

describe('age', () => {
  it.each([
    ['2026-08-01T11:59:30Z', '30s'],
    ['2026-08-01T11:00:00Z', '1h'],
    ['2026-08-01T09:55:00Z', '2h5m'],
    ['2026-07-28T12:00:00Z', '4d'],
  ])('%s → %s', (since, want) => {
    expect(age(since, now)).toBe(want);
  });
});

describe('statusDocument (-o json|yaml)', () => {
  const managed = {
    ...running,
    metadata: { ...running.metadata, managedFields: [{ manager: 'noma-coordinator' }] },
  } as NodeMaintenance;

  it('is the object itself for a named maintenance, less managedFields', () => {
    const doc = statusDocument([managed], true) as NodeMaintenance;
    expect(doc.metadata).toEqual(running.metadata);
    expect(doc.status).toEqual(running.status);
    expect(managed.metadata).toHaveProperty('managedFields'); // not changed in place
  });

  it('is a kubectl List otherwise, sorted by namespace and name', () => {
    const other = { ...running, metadata: { ...running.metadata, namespace: 'a-team' } };
    const doc = statusDocument([running, other], false) as {
      kind: string;
      items: NodeMaintenance[];
    };
    expect(doc).toMatchObject({ apiVersion: 'v1', kind: 'List' });
    expect(doc.items.map((m) => m.metadata.namespace)).toEqual(['a-team', 'gpu-ops']);
    expect(statusDocument([], false)).toEqual({ apiVersion: 'v1', kind: 'List', items: [] });
  });

  it('leaves what is not an object alone', () => {
    expect(withoutManagedFields(null)).toBe(null);
    expect(withoutManagedFields({ kind: 'x' })).toEqual({ kind: 'x' });
  });
});

describe('checkMaintenances', () => {
  it('keeps the valid ones and warns of each other, bounded', () => {
    const bad = {
      metadata: { namespace: 'ops', name: 'broken' },
      spec: { actions: 'x'.repeat(2000) },
    };
    const { items, problems } = checkMaintenances([running, bad]);
    expect(items).toEqual([running]);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^warning: ops\/broken does not match the NodeMaintenance schema/);
    expect(problems[0]?.length).toBeLessThan(450);
  });
});
