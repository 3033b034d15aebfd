// MaintenanceRun's decisions with fakes of its ports (nodes, drain, dispatcher, notifier, fleet):
// what it does to nodes and which steps it sends, when steps fail, when it is paused, halted,
// asked to restore or retry, and when another maintenance claims a node. The fakes record what
// reached them, as the real API server and agents would see it.
import type { V1Node } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import type {
  Action,
  NodeMaintenance,
  NodeMaintenanceSpec,
  NodeStatus,
} from '../../shared/api/index.js';
import { createLogger } from '../../shared/log.js';
import {
  CLAIM_ANNOTATION,
  RESTORE_ANNOTATION,
  RETRY_ANNOTATION,
} from '../../shared/maintenance-keys.js';
import type {
  ActionDispatcher,
  NodeActionOutcome,
  NodeActionRequest,
} from '../actions/dispatcher.js';
import { claimOf, formatClaim, type Claim } from '../nodes/claims.js';
import { ClaimedElsewhereError, type NodeOps } from '../nodes/node-ops.js';
import { addTaints, removeOurTaints } from '../nodes/taints.js';
import type { DrainFn, DrainRequest } from './ports.js';
import { MaintenanceRun, type Fleet, type RunDeps } from './run.js';
import { createStatusStore } from './status-store.js';

const log = createLogger('test', 'silent');
const UID = 'uid-1';

function setAnnotations(n: V1Node, annotations: Record<string, string>): void {
  n.metadata = Object.assign(n.metadata ?? {}, { annotations });
}

/** Nodes as the API server would hold them, changed only through the NodeOps port. */
class FakeNodes implements NodeOps {
  readonly nodes = new Map<string, V1Node>();
  /** Every node that was ever cordoned by this fake, in order. */
  readonly cordoned: string[] = [];

  add(name: string, over: Partial<V1Node['spec']> = {}, ready = true): void {
    this.nodes.set(name, {
      metadata: { name, annotations: {} },
      spec: { ...over },
      status: {
        conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }],
        nodeInfo: { bootID: 'boot-1' } as never,
      },
    });
  }
  get(name: string): V1Node {
    const n = this.nodes.get(name);
    if (n === undefined) throw new Error(`no node ${name}`);
    return n;
  }
  read(name: string) {
    const n = this.nodes.get(name);
    return Promise.resolve(n === undefined ? undefined : structuredClone(n));
  }
  enter(name: string, change: Parameters<NodeOps['enter']>[1]) {
    const n = this.get(name);
    const other = claimOf(n);
    if (
      other !== undefined &&
      other.uid !== change.claim.uid &&
      change.takeOver?.(other) !== true
    ) {
      return Promise.reject(new ClaimedElsewhereError(other));
    }
    n.spec = Object.assign(n.spec ?? {}, {
      unschedulable: true,
      taints: addTaints(n.spec?.taints ?? [], change.taints),
    });
    setAnnotations(n, {
      ...n.metadata?.annotations,
      [CLAIM_ANNOTATION]: formatClaim(change.claim),
    });
    this.cordoned.push(name);
    return Promise.resolve();
  }
  addTaints(name: string, taints: Parameters<NodeOps['addTaints']>[1]) {
    const n = this.get(name);
    n.spec = Object.assign(n.spec ?? {}, { taints: addTaints(n.spec?.taints ?? [], taints) });
    return Promise.resolve();
  }
  /** Every phase updateClaim wrote, by node. */
  readonly claimWrites = new Map<string, string[]>();
  updateClaim(name: string, claim: Claim) {
    const n = this.get(name);
    if (claimOf(n)?.uid === claim.uid) {
      this.claimWrites.set(name, [...(this.claimWrites.get(name) ?? []), claim.phase]);
      setAnnotations(n, { ...n.metadata?.annotations, [CLAIM_ANNOTATION]: formatClaim(claim) });
    }
    return Promise.resolve();
  }
  /** The left-by mark of each release, by node. */
  readonly leftBy = new Map<string, Parameters<NodeOps['release']>[2]>();
  release(...[name, , leftBy]: Parameters<NodeOps['release']>) {
    this.leftBy.set(name, leftBy);
    const n = this.get(name);
    const { [CLAIM_ANNOTATION]: _c, ...rest } = n.metadata?.annotations ?? {};
    setAnnotations(n, rest);
    return Promise.resolve();
  }
  leave(...[name, uid, taints, initial, uncordon]: Parameters<NodeOps['leave']>) {
    const n = this.get(name);
    const claim = claimOf(n);
    if (claim !== undefined && claim.uid !== uid) return Promise.resolve();
    const { [CLAIM_ANNOTATION]: _c, ...rest } = n.metadata?.annotations ?? {};
    setAnnotations(n, rest);
    n.spec = Object.assign(n.spec ?? {}, {
      taints: removeOurTaints(n.spec?.taints ?? [], taints, initial),
      ...(uncordon ? { unschedulable: false } : {}),
    });
    return Promise.resolve();
  }
  remove(name: string) {
    this.nodes.delete(name);
    return Promise.resolve();
  }
}

/** Steps as an agent would see them: each request recorded, ended by the test. */
class FakeDispatcher implements ActionDispatcher {
  readonly sent: NodeActionRequest[] = [];
  private readonly waiting = new Map<string, (o: NodeActionOutcome) => void>();
  /** Steps that end at once with this outcome, by action name. */
  auto = new Map<string, NodeActionOutcome['kind']>();
  /** Whether a cancelled step is known stopped (the agent answered, the pod is gone). */
  cancelConfirmed = true;
  /** Cancels asked for (an abort, or a call with an aborted signal), by action ID. */
  readonly cancels: string[] = [];
  /** A step in flight does not answer its abort (its task outlives the deletion's wait). */
  deafToAbort = false;

  run(req: NodeActionRequest): Promise<NodeActionOutcome> {
    const cancel = (): NodeActionOutcome => {
      this.cancels.push(req.actionId);
      return this.cancelConfirmed
        ? { kind: 'cancelled', confirmed: true, message: 'the agent stopped it' }
        : { kind: 'cancelled', confirmed: false, message: 'no answer from the agent' };
    };
    if (req.signal.aborted) return Promise.resolve(cancel());
    this.sent.push(req);
    const auto = this.auto.get(req.action.name ?? '');
    if (auto === 'succeeded') return Promise.resolve({ kind: 'succeeded' });
    if (auto === 'failed') return Promise.resolve({ kind: 'failed', message: 'exit 1' });
    return new Promise((resolve) => {
      this.waiting.set(req.actionId, resolve);
      req.signal.addEventListener('abort', () => {
        if (this.deafToAbort) return;
        this.waiting.delete(req.actionId);
        resolve(cancel());
      });
    });
  }
  end(node: string, kind: 'succeeded' | 'failed'): void {
    const id = [...this.waiting.keys()].find((k) => k.includes(`/${node}/`));
    if (id === undefined) throw new Error(`no step in flight on ${node}`);
    const resolve = this.waiting.get(id);
    this.waiting.delete(id);
    resolve?.(kind === 'succeeded' ? { kind } : { kind, message: 'exit 1' });
  }
  inFlight(): string[] {
    return [...this.waiting.keys()];
  }
}

const run = (name: string, type: Action['type'] = 'Run'): Action =>
  type === 'Run' ? { type, name, run: { command: ['true'] } } : { type, name };

interface Harness {
  run: MaintenanceRun;
  nodes: FakeNodes;
  dispatcher: FakeDispatcher;
  drains: { node: string; opts: DrainRequest }[];
  notified: string[];
  events: string[];
  status: (name: string) => NodeStatus | undefined;
  update: (change: (cr: NodeMaintenance) => NodeMaintenance) => void;
  cleared: { restore: string[]; retry: string[] }[];
}

const harnesses: Harness[] = [];
afterEach(async () => {
  await Promise.all(harnesses.splice(0).map((h) => h.run.stop()));
});

function harness(
  names: string[],
  spec: Partial<NodeMaintenanceSpec>,
  opts: {
    globalLimit?: number;
    setup?: (n: FakeNodes) => void;
    write?: (status: Record<string, unknown>) => Promise<void>;
    drain?: DrainFn;
    deps?: Pick<RunDeps, 'stuckAfterMs' | 'observePhase'>;
    /** Fails the first this many node lists with a 500. */
    listFailures?: number;
  } = {},
): Harness {
  const nodes = new FakeNodes();
  for (const n of names) nodes.add(n);
  opts.setup?.(nodes);
  let cr: NodeMaintenance = {
    apiVersion: 'noma.dev/v1alpha1',
    kind: 'NodeMaintenance',
    metadata: { name: 'm', namespace: 'ns', uid: UID, annotations: {} },
    spec: { operationName: 'op', linearTicket: 'ENG-1', nodeSelector: 'a=b', actions: [], ...spec },
  };
  const store = createStatusStore({
    initial: {},
    cr: () => cr,
    write: opts.write ?? (() => Promise.resolve()),
    log,
    now: () => new Date(),
    intervalMs: 5,
  });
  const dispatcher = new FakeDispatcher();
  const drains: Harness['drains'] = [];
  const drain: DrainFn = (node, o, ...rest) => {
    drains.push({ node, opts: o });
    if (opts.drain !== undefined) return opts.drain(node, o, ...rest);
    return Promise.resolve({ ok: true, progress: { total: 1, evicted: 1, pending: 0 } });
  };
  const events: string[] = [];
  const notified: string[] = [];
  const cleared: Harness['cleared'] = [];
  let changed: () => void = () => undefined;
  const fleet: Fleet = {
    heldElsewhere: () => undefined,
    unavailableCount: (except) => {
      const s = r.unavailableNodes();
      s.delete(except);
      return s.size;
    },
    changed: (ms, signal) =>
      new Promise((resolve) => {
        changed = resolve;
        const t = setTimeout(resolve, Math.min(ms, 20));
        signal.addEventListener('abort', () => {
          clearTimeout(t);
          resolve();
        });
      }),
    notifyChanged: () => {
      changed();
    },
  };
  let listFailures = opts.listFailures ?? 0;
  const r = new MaintenanceRun(cr, {
    log,
    nodes,
    listNodes: () =>
      (listFailures -= 1) >= 0
        ? Promise.reject(Object.assign(new Error('etcd leader changed'), { code: 500 }))
        : Promise.resolve(names.map((n) => nodes.get(n))),
    nodeFacts: (name) => nodes.nodes.get(name),
    claimIsStale: (c) => Promise.resolve(c.uid === 'gone'),
    clearRequests: (done) => {
      cleared.push(done);
      const {
        [RESTORE_ANNOTATION]: _restore,
        [RETRY_ANNOTATION]: _retry,
        ...rest
      } = cr.metadata.annotations ?? {};
      cr = { ...cr, metadata: { ...cr.metadata, annotations: rest } };
      return Promise.resolve();
    },
    ready: () => Promise.resolve(),
    drain,
    dispatcher,
    notifier: {
      send: (msg) => {
        notified.push(msg.text);
        return Promise.resolve({ delivered: true });
      },
    },
    events: { record: (_t, type, reason, message) => events.push(`${type} ${reason}: ${message}`) },
    fleet,
    store,
    now: () => new Date(),
    globalLimit: opts.globalLimit ?? 100,
    maxSelectedNodes: 100,
    agentRetryMs: 10,
    cancelWaitMs: 300,
    ...opts.deps,
  });
  const h: Harness = {
    run: r,
    nodes,
    dispatcher,
    drains,
    notified,
    events,
    cleared,
    status: (name) => r.status.nodes?.find((n) => n.name === name),
    update: (change) => {
      cr = change(cr);
      r.update(cr);
    },
  };
  harnesses.push(h);
  void r.start();
  return h;
}

async function until<T>(what: string, f: () => T | undefined | false, ms = 2_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const settle = () => new Promise((r) => setTimeout(r, 100));
const annotate = (h: Harness, key: string, value: string) => {
  h.update((cr) => ({
    ...cr,
    metadata: { ...cr.metadata, annotations: { ...cr.metadata.annotations, [key]: value } },
  }));
};

describe('MaintenanceRun: blast radius', () => {
  it('keeps a failed node in its slot: with maxUnavailable 1 no other node starts', async () => {
    const h = harness(['a', 'b', 'c'], {
      actions: [run('step')],
      options: { maxUnavailable: 1, maxFailedNodes: 3 },
    });
    await until('a step in flight', () => h.dispatcher.inFlight().length === 1);
    h.dispatcher.end('a', 'failed');
    await until('a failed', () => h.status('a')?.phase === 'Failed');
    await settle();
    expect(h.nodes.cordoned).toEqual(['a']);
    expect(h.status('b')?.message).toMatch(/maxUnavailable \(1\) reached/);
  });

  it('counts a selected node that is NotReady or cordoned by an admin, and lets it go first', async () => {
    const h = harness(
      ['a', 'b', 'c'],
      { actions: [], options: { maxUnavailable: 1 } },
      {
        setup: (n) => {
          n.add('b', {}, false); // NotReady
        },
      },
    );
    // b is unavailable anyway: a and c wait, b itself may start.
    await until('b done', () => h.status('b')?.phase === 'Succeeded');
    expect(h.nodes.cordoned[0]).toBe('b');
  });

  it('does not take a node another maintenance claims, and takes over a stale claim', async () => {
    const other = { maintenance: 'ns/first', uid: 'other', phase: 'Cordoned' };
    const stale = { maintenance: 'ns/old', uid: 'gone', phase: 'Failed' };
    const h = harness(
      ['a', 'b'],
      { actions: [] },
      {
        setup: (n) => {
          n.get('a').metadata = {
            name: 'a',
            annotations: { [CLAIM_ANNOTATION]: formatClaim(other) },
          };
          n.get('b').metadata = {
            name: 'b',
            annotations: { [CLAIM_ANNOTATION]: formatClaim(stale) },
          };
        },
      },
    );
    await until('b done', () => h.status('b')?.phase === 'Succeeded');
    await settle();
    expect(h.nodes.cordoned).toEqual(['b']);
    expect(h.status('a')).toMatchObject({ phase: 'Pending' });
    expect(h.status('a')?.message).toMatch(/claimed by maintenance ns\/first/);
    expect(claimOf(h.nodes.get('a'))?.uid).toBe('other');
  });
});

describe('MaintenanceRun: failure budget', () => {
  it('halts at the first failure: the node in flight finishes its step and stops', async () => {
    const h = harness(['a', 'b', 'c', 'd'], {
      actions: [run('one'), run('two')],
      options: { maxUnavailable: 2 },
    });
    await until('two steps in flight', () => h.dispatcher.inFlight().length === 2);
    h.dispatcher.end('a', 'failed');
    await until('halted', () => h.run.status.phase === 'Halted');
    h.dispatcher.end('b', 'succeeded');
    await until('b past step one', () => h.status('b')?.currentActionIndex === 1);
    await settle();
    // b never began step two, and no third node was touched.
    expect(h.dispatcher.sent.map((s) => `${s.node}:${s.action.name}`)).toEqual(['a:one', 'b:one']);
    expect(h.nodes.cordoned.sort()).toEqual(['a', 'b']);
    expect(h.status('b')?.message).toMatch(/^waiting: halted/);
    expect(h.events.filter((e) => e.includes('FailureBudgetExceeded'))).toHaveLength(1);
    expect(h.notified).toHaveLength(1);
    expect(h.run.status.conditions?.find((c) => c.type === 'Ready')?.reason).toBe(
      'FailureBudgetExceeded',
    );
    // Raising the budget lets it go on.
    h.update((cr) => ({
      ...cr,
      spec: { ...cr.spec, options: { maxUnavailable: 2, maxFailedNodes: 2 } },
    }));
    await until('b on step two', () =>
      h.dispatcher.sent.some((s) => s.node === 'b' && s.action.name === 'two'),
    );
  });
});

describe('MaintenanceRun: restore and retry', () => {
  it('restores a failed node on request, freeing its slot', async () => {
    const h = harness(['a', 'b'], { actions: [run('step')], options: { maxUnavailable: 1 } });
    await until('a in flight', () => h.dispatcher.inFlight().length === 1);
    h.dispatcher.end('a', 'failed');
    await until('halted', () => h.run.status.phase === 'Halted');
    expect(h.nodes.get('a').spec?.unschedulable).toBe(true);
    annotate(h, RESTORE_ANNOTATION, 'a');
    await until('a restored', () => h.status('a')?.phase === 'Restored');
    expect(h.nodes.get('a').spec?.unschedulable).toBe(false);
    expect(claimOf(h.nodes.get('a'))).toBeUndefined();
    expect(h.cleared).toContainEqual({ restore: ['a'], retry: [] });
    // The slot is free and the budget no longer spent: b goes.
    await until('b in flight', () => h.dispatcher.inFlight().some((id) => id.includes('/b/')));
  });

  it('retries only the failed step, with the next attempt number', async () => {
    const h = harness(['a'], { actions: [run('ok'), run('flaky')] });
    h.dispatcher.auto.set('ok', 'succeeded');
    await until('flaky in flight', () => h.dispatcher.inFlight().length === 1);
    h.dispatcher.end('a', 'failed');
    await until('a failed', () => h.status('a')?.phase === 'Failed');
    annotate(h, RETRY_ANNOTATION, 'a');
    await until('flaky again', () => h.dispatcher.inFlight().length === 1);
    expect(
      h.dispatcher.sent.map((s) => `${s.action.name}:${s.actionId.split('/').at(-1)}`),
    ).toEqual(['ok:1', 'flaky:1', 'flaky:2']);
    // Cordon and drain were checked again before the step.
    expect(h.nodes.cordoned).toEqual(['a', 'a']);
    expect(h.drains.map((d) => d.node)).toEqual(['a', 'a']);
    h.dispatcher.end('a', 'succeeded');
    await until('completed', () => h.run.status.phase === 'Completed');
    expect(h.status('a')?.attempt).toBeUndefined();
  });

  it('refuses to restore a node in flight, and says so', async () => {
    const h = harness(['a'], { actions: [run('step')] });
    await until('a in flight', () => h.dispatcher.inFlight().length === 1);
    annotate(h, RESTORE_ANNOTATION, 'a');
    await until('refused', () => h.events.some((e) => e.includes('RequestRefused')));
    expect(h.status('a')?.phase).toBe('InAction');
    expect(h.cleared).toContainEqual({ restore: ['a'], retry: [] });
  });
});

describe('MaintenanceRun: pause', () => {
  it('lets the step in flight finish and begins no next step until resumed', async () => {
    const h = harness(['a', 'b'], {
      actions: [run('one'), run('two')],
      options: { maxUnavailable: 1 },
    });
    await until('one in flight', () => h.dispatcher.inFlight().length === 1);
    h.update((cr) => ({ ...cr, spec: { ...cr.spec, paused: true } }));
    h.dispatcher.end('a', 'succeeded');
    await until('paused', () => h.run.status.phase === 'Paused');
    await settle();
    expect(h.dispatcher.sent).toHaveLength(1);
    h.update((cr) => ({ ...cr, spec: { ...cr.spec, paused: false } }));
    await until('two in flight', () => h.dispatcher.inFlight().length === 1);
    expect(h.dispatcher.sent.at(-1)?.action.name).toBe('two');
  });
});

describe('MaintenanceRun: drains', () => {
  it('drains every pod before a Reboot, and adds NoExecute taints only after the drain', async () => {
    const h = harness(['a'], {
      actions: [run('reboot', 'Reboot')],
      options: { taints: [{ key: 'runai', value: 'drain', effect: 'NoExecute' }] },
    });
    await until('reboot in flight', () => h.dispatcher.inFlight().length === 1);
    // NoExecute: the first drain already ends every pod, so no second drain is needed.
    expect(h.drains.map((d) => d.opts.drainNonGpuPods)).toEqual([true]);
    expect(h.nodes.get('a').spec?.taints?.map((t) => t.key)).toEqual([
      'noma.dev/maintenance',
      'runai',
    ]);
  });

  it('drains GPU pods first, then the rest before a Reboot', async () => {
    const h = harness(['a'], { actions: [run('script'), run('reboot', 'Reboot')] });
    h.dispatcher.auto.set('script', 'succeeded');
    await until('reboot in flight', () => h.dispatcher.inFlight().length === 1);
    expect(h.drains.map((d) => d.opts.drainNonGpuPods)).toEqual([false, true]);
    expect(h.status('a')?.drain).toMatchObject({ scope: 'AllPods', evicted: 2, total: 2 });
  });
});

describe('MaintenanceRun: deletion', () => {
  it('returns its nodes, failed ones too, even while every status write fails', async () => {
    let failing = false;
    const h = harness(
      ['a', 'b'],
      { actions: [run('step')], options: { maxFailedNodes: 2 } },
      {
        write: () =>
          failing
            ? Promise.reject(Object.assign(new Error('webhook down'), { code: 500 }))
            : Promise.resolve(),
      },
    );
    await until('two in flight', () => h.dispatcher.inFlight().length === 2);
    h.dispatcher.end('a', 'failed');
    await until('a failed', () => h.status('a')?.phase === 'Failed');
    failing = true;
    const started = Date.now();
    await h.run.cancel();
    expect(Date.now() - started).toBeLessThan(3_000);
    for (const n of ['a', 'b']) {
      expect(h.nodes.get(n).spec?.unschedulable).toBe(false);
      expect(claimOf(h.nodes.get(n))).toBeUndefined();
    }
  });
});

describe('MaintenanceRun: deletion mid-step', () => {
  it('returns a node once its cancelled step is confirmed stopped', async () => {
    const h = harness(['a'], { actions: [run('step'), run('after')] });
    await until('the step in flight', () => h.dispatcher.inFlight().length === 1);
    const id = h.status('a')?.actionID;
    await h.run.cancel();
    expect(h.dispatcher.cancels).toEqual([id]);
    expect(h.status('a')?.phase).toBe('Restored');
    expect(h.nodes.get('a').spec?.unschedulable).toBe(false);
    expect(claimOf(h.nodes.get('a'))).toBeUndefined();
  });

  it('keeps the node cordoned and Failed when the cancel is not confirmed', async () => {
    const h = harness(['a', 'b'], {
      actions: [run('step'), run('after')],
      options: { maxUnavailable: 2 },
    });
    await until('two in flight', () => h.dispatcher.inFlight().length === 2);
    h.dispatcher.end('b', 'failed');
    await until('b failed', () => h.status('b')?.phase === 'Failed');
    h.dispatcher.cancelConfirmed = false;
    await h.run.cancel();
    expect(h.status('a')).toMatchObject({ phase: 'Failed' });
    expect(h.status('a')?.message).toMatch(/^cancel not confirmed: no answer from the agent/);
    expect(h.nodes.get('a').spec?.unschedulable).toBe(true);
    expect(h.nodes.get('a').spec?.taints?.length ?? 0).toBeGreaterThan(0);
    // The claim became a left-by mark naming this maintenance and what noma did.
    expect(claimOf(h.nodes.get('a'))).toBeUndefined();
    expect(h.nodes.leftBy.get('a')).toMatchObject({
      maintenance: 'ns/m',
      uid: UID,
      unschedulable: true,
    });
    expect(h.events.some((e) => e.startsWith('Warning CancelNotConfirmed'))).toBe(true);
    // b's step had ended (it failed): nothing to confirm, b goes back.
    expect(h.status('b')?.phase).toBe('Restored');
    expect(h.nodes.get('b').spec?.unschedulable).toBe(false);
  });

  it('cancels a step whose task did not answer in time through the dispatcher', async () => {
    const h = harness(['a'], { actions: [run('step')] });
    await until('the step in flight', () => h.dispatcher.inFlight().length === 1);
    const id = h.status('a')?.actionID ?? '';
    // The step's task outlives the deletion's wait (as a deletion seen after a restart has
    // no task at all): nothing recorded its cancel, so cancel() asks itself.
    h.dispatcher.deafToAbort = true;
    h.dispatcher.cancelConfirmed = false;
    await h.run.cancel();
    expect(h.dispatcher.cancels).toEqual([id]);
    expect(h.status('a')?.phase).toBe('Failed');
    expect(h.nodes.get('a').spec?.unschedulable).toBe(true);
    // The late answer lets the task end (afterEach stops the run).
    h.dispatcher.end('a', 'failed');
  });
});

describe('MaintenanceRun: states for other controllers', () => {
  it('records the time of each state, observes each phase left, and keeps the claim on the current phase', async () => {
    const left: string[] = [];
    const h = harness(
      ['a'],
      { actions: [run('step')] },
      { deps: { observePhase: (phase) => left.push(phase) } },
    );
    await until('the step in flight', () => h.dispatcher.inFlight().length === 1);
    const claim = () => claimOf(h.nodes.get('a'))?.phase;
    await until('claim says InAction', () => claim() === 'InAction');
    const times = h.status('a')?.phaseTimes ?? {};
    expect(Object.keys(times).sort()).toEqual([
      'actionStarted',
      'cordoned',
      'drained',
      'scheduled',
    ]);
    for (const t of Object.values(times)) expect(t).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    // The cordon's own write says Cordoned; later phases only through updateClaim.
    expect(h.nodes.claimWrites.get('a')).not.toContain('Cordoned');
    h.dispatcher.end('a', 'succeeded');
    await until('a done', () => h.status('a')?.phase === 'Succeeded');
    expect(h.status('a')?.phaseTimes?.completed).toBeDefined();
    await until('phases left', () => left.includes('InAction'));
    expect(left).toEqual(['Pending', 'Cordoned', 'Draining', 'Drained', 'InAction']);
  });

  it('marks the claim Failed when the node fails', async () => {
    const h = harness(['a'], { actions: [run('step')] });
    await until('the step in flight', () => h.dispatcher.inFlight().length === 1);
    h.dispatcher.end('a', 'failed');
    await until('claim says Failed', () => claimOf(h.nodes.get('a'))?.phase === 'Failed');
    expect(h.status('a')?.phaseTimes?.failed).toBeDefined();
  });

  it('records SLAExpired when drainTimeout passes, and forceDrain still ends the drain', async () => {
    const h = harness(
      ['a', 'b'],
      { actions: [], options: { drainTimeout: '150ms', forceDrain: true } },
      {
        // a's pods hold out past drainTimeout (then forceDrain deletes them); b's go at once.
        drain: async (node) => {
          if (node === 'a') await new Promise((r) => setTimeout(r, 300));
          return { ok: true, progress: { total: 1, evicted: 1, pending: 0 } };
        },
      },
    );
    await until(
      'both done',
      () => h.status('a')?.phase === 'Succeeded' && h.status('b')?.phase === 'Succeeded',
    );
    expect(h.status('a')?.phaseTimes?.slaExpired).toBeDefined();
    expect(h.status('b')?.phaseTimes?.slaExpired).toBeUndefined();
    expect(h.events.filter((e) => e.includes('SLAExpired'))).toEqual([
      'Warning SLAExpired: a: drainTimeout (150ms) passed while draining a: pods still there are deleted now (forceDrain)',
      'Warning SLAExpired: ns/m: drainTimeout (150ms) passed while draining a: pods still there are deleted now (forceDrain)',
    ]);
    expect(h.notified).toEqual([
      expect.stringMatching(/^\[ENG-1\] ns\/m: drainTimeout \(150ms\) passed while draining a/),
    ]);
    await until('condition', () => h.run.status.conditions?.some((c) => c.type === 'SLAExpired'));
    const c = h.run.status.conditions?.find((x) => x.type === 'SLAExpired');
    expect(c).toMatchObject({ status: 'True', reason: 'DrainTimeoutPassed' });
    expect(c?.message).toMatch(/1 node\(s\): a;/);
  });

  it('raises Stuck for a node whose step does not end, and clears it once the node moves', async () => {
    const h = harness(['a', 'b'], { actions: [run('step')] }, { deps: { stuckAfterMs: 150 } });
    await until('steps in flight', () => h.dispatcher.inFlight().length === 2);
    h.dispatcher.end('b', 'succeeded');
    const stuck = () => h.run.status.conditions?.find((c) => c.type === 'Stuck');
    await until('Stuck', () => stuck()?.status === 'True', 3_000);
    expect(h.run.stuckNodes().map((n) => n.name)).toEqual(['a']);
    expect(stuck()?.message).toMatch(
      /^1 node\(s\) stuck: a: step 0 \(step\) for \d+s without progress$/,
    );
    expect(h.events).toContainEqual(expect.stringMatching(/^Warning Stuck: a: stuck: step 0/));
    h.dispatcher.end('a', 'succeeded');
    await until('Stuck cleared', () => stuck()?.status === 'False', 3_000);
    expect(h.run.stuckNodes()).toEqual([]);
  });

  it('does not count a long pause once resumed', async () => {
    const h = harness(
      ['a'],
      { actions: [run('one'), run('boot', 'Reboot')] },
      {
        deps: { stuckAfterMs: 1_000 },
        // The drain before the Reboot (every pod) takes a while: the node does not move meanwhile.
        drain: async (_node, o) => {
          if (o.drainNonGpuPods) await new Promise((r) => setTimeout(r, 700));
          return { ok: true, progress: { total: 1, evicted: 1, pending: 0 } };
        },
      },
    );
    await until('the step in flight', () => h.dispatcher.inFlight().length === 1);
    h.update((cr) => ({ ...cr, spec: { ...cr.spec, paused: true } }));
    h.dispatcher.end('a', 'succeeded');
    await until('a waits, paused', () => h.status('a')?.message?.startsWith('waiting: paused'));
    await new Promise((r) => setTimeout(r, 1_200)); // paused longer than stuckAfter
    h.update((cr) => ({ ...cr, spec: { ...cr.spec, paused: false } }));
    await until('the Reboot in flight', () => h.dispatcher.inFlight().length === 1, 3_000);
    expect(h.events.filter((e) => e.includes('Stuck'))).toEqual([]);
  });

  it('does not call a paused maintenance Stuck', async () => {
    const h = harness(
      ['a'],
      { actions: [run('one'), run('two')], paused: false },
      { deps: { stuckAfterMs: 100 } },
    );
    await until('the step in flight', () => h.dispatcher.inFlight().length === 1);
    h.update((cr) => ({ ...cr, spec: { ...cr.spec, paused: true } }));
    h.dispatcher.end('a', 'succeeded');
    await new Promise((r) => setTimeout(r, 400));
    expect(h.run.stuckNodes()).toEqual([]);
    expect(h.run.status.conditions?.find((c) => c.type === 'Stuck')).toBeUndefined();
  });
});

describe('MaintenanceRun: selection', () => {
  it('selects again when the API server fails the node list, instead of staying Pending', async () => {
    const h = harness(['a'], { actions: [] }, { listFailures: 2 });
    await until('completed', () => h.run.status.phase === 'Completed', 5_000);
    expect(h.nodes.cordoned).toEqual(['a']);
  });
});
