import { afterEach, describe, expect, it } from 'vitest';
import type { V1Node, V1NodeSystemInfo } from '@kubernetes/client-node';
import type { Action } from '../../shared/api/index.js';
import { createLogger } from '../../shared/log.js';
import type { ActionOutcomeKind, MessageOf } from '../../shared/protocol.js';
import type { NodeActionOutcome, NodeActionRequest } from '../actions/dispatcher.js';
import type { NodeWatcher } from '../nodes/node-watch.js';
import {
  actionTimeoutMs,
  cancelByResult,
  cancelOnHello,
  LinkDispatcher,
  rebootHappened,
  rebootLanded,
  toOutcome,
  toWire,
  type AgentLink,
} from './dispatcher.js';
import type { LinkHandlers } from './server.js';

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

describe('toOutcome: LedgerUnreadable', () => {
  const result = (message: string, extra: Record<string, unknown> = {}) =>
    ({
      v: 1,
      type: 'action.result',
      id: 'i',
      outcome: 'failed',
      message,
      ...extra,
    }) as MessageOf<'action.result'>;
  it('carries the reason when the agent refuses an ID whose record it cannot read', () => {
    expect(toOutcome(result('LedgerUnreadable: record of i: bad JSON'))).toEqual({
      kind: 'failed',
      message: 'LedgerUnreadable: record of i: bad JSON',
      reason: 'LedgerUnreadable',
    });
    expect(toOutcome(result('record of i: bad JSON', { reason: 'LedgerUnreadable' }))).toEqual({
      kind: 'failed',
      message: 'LedgerUnreadable: record of i: bad JSON',
      reason: 'LedgerUnreadable',
    });
  });
  it('leaves other failures without a reason', () => {
    expect(toOutcome(result('exit code 1'))).toEqual({
      kind: 'failed',
      message: 'Failed: exit code 1',
    });
    expect(toOutcome(result('saw LedgerUnreadable: later'))).not.toHaveProperty('reason');
  });
});

describe('rebootHappened', () => {
  it('needs both boots known and different', () => {
    expect(rebootHappened('b1', 'b2')).toBe(true);
    expect(rebootHappened('b1', 'b1')).toBe(false);
    expect(rebootHappened(undefined, 'b2')).toBe(false);
    expect(rebootHappened('b1', undefined)).toBe(false);
    expect(rebootHappened('', 'b2')).toBe(false);
    expect(rebootHappened('b1', '')).toBe(false);
  });
});

describe('cancelOnHello', () => {
  type State = 'running' | 'rebooting' | 'finished';
  const hello = (bootID: string, actions: [string, State][]) => ({
    bootID,
    actions: actions.map(([id, state]) => ({ id, state })),
  });
  it.each([
    ['running: cancel, wait', false, hello('b1', [['a', 'running']]), true, false],
    ['finished: ended', false, hello('b1', [['a', 'finished']]), false, true],
    // Unlisted: never started, or a record the agent cannot read (its action may run): no proof.
    ['not listed: cancel, wait', false, hello('b1', []), true, false],
    ['another ID finished: cancel, wait', false, hello('b1', [['b', 'finished']]), true, false],
    ['Reboot on a new boot', true, hello('b2', [['a', 'rebooting']]), false, true],
    ['Reboot rebooting, same boot', true, hello('b1', [['a', 'rebooting']]), false, false],
    ['Reboot finished, same boot', true, hello('b1', [['a', 'finished']]), false, true],
    ['Reboot not listed, same boot', true, hello('b1', []), false, false],
    ['Reboot not listed, new boot', true, hello('b2', []), false, true],
  ])('%s', (_name, reboot, h, send, confirmed) => {
    const d = cancelOnHello('a', reboot, 'b1', h);
    expect(d.send).toBe(send);
    expect(d.confirmed !== undefined).toBe(confirmed);
    if (!confirmed) expect(d.waiting).not.toBe('');
  });
});

describe('cancelByResult', () => {
  const r = (outcome: ActionOutcomeKind, message = 'm') =>
    ({ v: 1, type: 'action.result', id: 'a', outcome, message }) as MessageOf<'action.result'>;
  it('takes any result as the end of the action, but not a ledger it cannot read', () => {
    expect(cancelByResult(r('cancelled')).confirmed).toBe(true);
    expect(cancelByResult(r('succeeded'))).toEqual({
      confirmed: true,
      message: 'it had ended (succeeded) before the cancel',
    });
    expect(cancelByResult(r('interrupted')).confirmed).toBe(true);
    expect(cancelByResult(r('failed', 'LedgerUnreadable: x')).confirmed).toBe(false);
  });
});

// ---- LinkDispatcher against fakes of its ports: the agent link and the Node watch --------------

type Sent = { node: string; type: 'action.start' | 'action.cancel'; id: string };

/** The agent link as the dispatcher sees it; agents connect, say hello and answer on cue. */
class FakeLink implements AgentLink {
  handlers: LinkHandlers | undefined;
  readonly sent: Sent[] = [];
  private readonly hellos = new Map<string, MessageOf<'hello'>>();
  setHandlers(h: LinkHandlers): void {
    this.handlers = h;
  }
  send(node: string, type: Sent['type'], body: Record<string, unknown>): boolean {
    if (!this.hellos.has(node)) return false;
    this.sent.push({ node, type, id: String(body['id']) });
    return true;
  }
  isConnected(node: string): boolean {
    return this.hellos.has(node);
  }
  lastHello(node: string): MessageOf<'hello'> | undefined {
    return this.hellos.get(node);
  }
  hello(node: string, bootID: string, actions: MessageOf<'hello'>['actions'] = []): void {
    const h: MessageOf<'hello'> = {
      v: 1,
      type: 'hello',
      node,
      bootID,
      version: 't',
      inventory: null,
      actions,
    };
    this.hellos.set(node, h);
    this.handlers?.onHello(node, h);
  }
  disconnect(node: string): void {
    this.hellos.delete(node);
  }
  result(node: string, id: string, outcome: ActionOutcomeKind, message = 'm'): void {
    this.handlers?.onResult(node, { v: 1, type: 'action.result', id, outcome, message });
  }
  types(): string[] {
    return this.sent.map((s) => s.type);
  }
}

/** Nodes the test changes; every watcher of one hears each change. */
class FakeNodes {
  private readonly nodes = new Map<string, V1Node>();
  private readonly watchers = new Set<{ name: string; on: (n: V1Node | undefined) => void }>();
  readonly watch: NodeWatcher = (name, on, signal) => {
    const w = { name, on };
    this.watchers.add(w);
    signal.addEventListener('abort', () => this.watchers.delete(w), { once: true });
    queueMicrotask(() => {
      if (!signal.aborted) on(this.nodes.get(name));
    });
  };
  set(name: string, bootID: string, ready = true): void {
    const node: V1Node = {
      metadata: { name },
      status: {
        nodeInfo: { bootID } as V1NodeSystemInfo,
        conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }],
      },
    };
    this.nodes.set(name, node);
    for (const w of [...this.watchers]) if (w.name === name) w.on(node);
  }
  watching(): number {
    return this.watchers.size;
  }
}

interface Harness {
  link: FakeLink;
  nodes: FakeNodes;
  dispatcher: LinkDispatcher;
}

function harness(cancelConfirmMs = 5_000): Harness {
  const link = new FakeLink();
  const nodes = new FakeNodes();
  const dispatcher = new LinkDispatcher({
    log: createLogger('test', 'silent'),
    server: link,
    watchNode: nodes.watch,
    cancelConfirmMs,
  });
  return { link, nodes, dispatcher };
}

const script: Action = { type: 'Script', script: { script: 'sleep 100' } };
const reboot: Action = { type: 'Reboot' };
const ID = 'uid/gpu-1/0/1';

function request(
  action: Action,
  ac: AbortController,
  extra: Partial<NodeActionRequest> = {},
): NodeActionRequest {
  return {
    actionId: ID,
    node: 'gpu-1',
    index: 0,
    action,
    signal: ac.signal,
    maintenance: { namespace: 'ops', name: 'm', uid: 'uid' },
    report: () => Promise.resolve(),
    annotations: () => ({}),
    maintenanceChanged: (s) =>
      new Promise((r) => {
        s.addEventListener(
          'abort',
          () => {
            r();
          },
          { once: true },
        );
      }),
    ...extra,
  };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

/** Whether `p` has settled after the queued work ran. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true));
  await tick();
  return done;
}

describe('LinkDispatcher: confirmed cancel', () => {
  const aborts: AbortController[] = [];
  afterEach(() => {
    for (const ac of aborts.splice(0)) ac.abort();
  });
  const abortable = () => {
    const ac = new AbortController();
    aborts.push(ac);
    return ac;
  };

  it('confirms the cancel when the agent answers with its result', async () => {
    const { link, dispatcher } = harness();
    link.hello('gpu-1', 'b1');
    const ac = abortable();
    const running = dispatcher.run(request(script, ac));
    expect(link.types()).toEqual(['action.start']);
    ac.abort();
    await tick();
    expect(link.types()).toEqual(['action.start', 'action.cancel']);
    expect(await settled(running)).toBe(false);
    link.result('gpu-1', ID, 'cancelled', 'cancelled by the coordinator');
    expect(await running).toEqual({
      kind: 'cancelled',
      confirmed: true,
      message: 'the agent cancelled it',
    });
  });

  it('confirms it too when the action had ended before the cancel reached it', async () => {
    const { link, dispatcher } = harness();
    link.hello('gpu-1', 'b1');
    const ac = abortable();
    const running = dispatcher.run(request(script, ac));
    ac.abort();
    await tick();
    link.result('gpu-1', ID, 'succeeded');
    const o = await running;
    expect(o).toMatchObject({ kind: 'cancelled', confirmed: true });
    expect(o.message).toMatch(/ended \(succeeded\)/);
  });

  it('does not confirm a cancel that nothing answers within the bound', async () => {
    const { link, dispatcher } = harness(60_000);
    link.hello('gpu-1', 'b1');
    const ac = abortable();
    const t0 = Date.now();
    const running = dispatcher.run(request(script, ac, { cancelConfirmMs: 80 }));
    ac.abort();
    const o = await running;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(75);
    expect(o).toMatchObject({ kind: 'cancelled', confirmed: false });
    expect(o.message).toMatch(/^cancel not confirmed within 0 s: the agent did not report/);
    // A result after the bound changes nothing and reaches no one.
    link.result('gpu-1', ID, 'cancelled');
  });

  it('ignores a result for the ID from another node', async () => {
    const { link, dispatcher } = harness(80);
    link.hello('gpu-1', 'b1');
    const ac = abortable();
    const running = dispatcher.run(request(script, ac));
    ac.abort();
    await tick();
    link.result('gpu-2', ID, 'cancelled');
    expect(await running).toMatchObject({ kind: 'cancelled', confirmed: false });
  });

  it('keeps a cancel due while the agent is away and sends it at its hello', async () => {
    const { link, dispatcher } = harness();
    link.hello('gpu-1', 'b1');
    const ac = abortable();
    const running = dispatcher.run(request(script, ac));
    link.disconnect('gpu-1');
    ac.abort();
    await tick();
    expect(link.types()).toEqual(['action.start']);
    link.hello('gpu-1', 'b1', [{ id: ID, state: 'running' }]);
    // The cancel goes, and the start is not sent again.
    expect(link.types()).toEqual(['action.start', 'action.cancel']);
    expect(await settled(running)).toBe(false);
    link.result('gpu-1', ID, 'cancelled');
    expect(await running).toMatchObject({ kind: 'cancelled', confirmed: true });
  });

  it('takes a hello that lists the action finished as proof, and sends nothing', async () => {
    const { link, dispatcher } = harness();
    link.hello('gpu-1', 'b1');
    const ac = abortable();
    const running = dispatcher.run(request(script, ac));
    link.disconnect('gpu-1');
    ac.abort();
    await tick();
    link.hello('gpu-1', 'b1', [{ id: ID, state: 'finished' }]);
    expect(await running).toEqual({
      kind: 'cancelled',
      confirmed: true,
      message: 'the agent recorded the action as ended',
    });
    expect(link.types()).toEqual(['action.start']);
  });

  it('does not take a hello that does not list the action as proof', async () => {
    const { link, dispatcher } = harness(80);
    link.hello('gpu-1', 'b1');
    const ac = abortable();
    const running = dispatcher.run(request(script, ac));
    link.disconnect('gpu-1');
    ac.abort();
    await tick();
    link.hello('gpu-1', 'b1', []);
    // The cancel goes (a start whose ledger write is in flight is stopped by it); no start.
    expect(link.types()).toEqual(['action.start', 'action.cancel']);
    const o = await running;
    expect(o).toMatchObject({ kind: 'cancelled', confirmed: false });
    expect(o.message).toMatch(/does not list the action/);
  });

  it('says the agent is away when it did not come back within the bound', async () => {
    const { link, dispatcher } = harness(60);
    link.hello('gpu-1', 'b1');
    const ac = abortable();
    const running = dispatcher.run(request(script, ac));
    link.disconnect('gpu-1');
    ac.abort();
    const o = await running;
    expect(o).toMatchObject({ kind: 'cancelled', confirmed: false });
    expect(o.message).toMatch(/the agent is not connected$/);
  });

  it('cancels a step no run() follows when called with an aborted signal', async () => {
    const { link, dispatcher } = harness();
    // The agent's hello came after any start of the ID (an earlier leader's): it lists it running.
    link.hello('gpu-1', 'b1', [{ id: ID, state: 'running' }]);
    const ac = abortable();
    ac.abort();
    const running = dispatcher.run(request(script, ac));
    expect(link.types()).toEqual(['action.cancel']);
    link.result('gpu-1', ID, 'cancelled');
    expect(await running).toMatchObject({ kind: 'cancelled', confirmed: true });

    // Listed finished: confirmed at once, nothing sent.
    const other = harness();
    other.link.hello('gpu-1', 'b1', [{ id: ID, state: 'finished' }]);
    expect(await other.dispatcher.run(request(script, ac))).toMatchObject({
      kind: 'cancelled',
      confirmed: true,
    });
    expect(other.link.types()).toEqual([]);
    // Not connected: nothing sent now; the cancel waits for a hello.
    const away = harness(50);
    expect(await away.dispatcher.run(request(script, ac))).toMatchObject({
      kind: 'cancelled',
      confirmed: false,
    });
  });
});

describe('LinkDispatcher: a cancel asked twice', () => {
  it("gives the result to both: the step's own run() and a later one with an aborted signal", async () => {
    const { link, dispatcher } = harness();
    link.hello('gpu-1', 'b1');
    const ac = new AbortController();
    const own = dispatcher.run(request(script, ac));
    ac.abort();
    await tick();
    const again = dispatcher.run(request(script, ac));
    link.result('gpu-1', ID, 'cancelled');
    const both = await Promise.all([own, again]);
    expect(both.map((o) => o.kind === 'cancelled' && o.confirmed)).toEqual([true, true]);
  });
});

describe('LinkDispatcher: detach', () => {
  it('sends nothing on an abort after detach and resolves stopped at once', async () => {
    const { link, dispatcher } = harness();
    link.hello('gpu-1', 'b1');
    const ac = new AbortController();
    const running = dispatcher.run(request(script, ac));
    dispatcher.detach();
    ac.abort();
    expect(await running).toEqual({ kind: 'unavailable', message: 'stopped' });
    expect(link.types()).toEqual(['action.start']);
  });

  it('ends a cancel still waiting for its confirmation', async () => {
    const { link, dispatcher } = harness(60_000);
    link.hello('gpu-1', 'b1');
    const ac = new AbortController();
    const running = dispatcher.run(request(script, ac));
    ac.abort();
    await tick();
    dispatcher.detach();
    expect(await running).toEqual({ kind: 'unavailable', message: 'stopped' });
  });
});

describe('LinkDispatcher: the reboot fence', () => {
  it('does not send a Reboot to an agent already on another boot; waits for the Node', async () => {
    const { link, nodes, dispatcher } = harness();
    nodes.set('gpu-1', 'b2', false);
    link.hello('gpu-1', 'b2');
    const ac = new AbortController();
    const running = dispatcher.run(request(reboot, ac, { bootIDBeforeReboot: 'b1' }));
    expect(await settled(running)).toBe(false);
    nodes.set('gpu-1', 'b2', true);
    expect(await running).toEqual({ kind: 'succeeded' });
    expect(link.sent).toEqual([]);
  });

  it('does not re-send a Reboot at a hello from a new boot', async () => {
    const { link, nodes, dispatcher } = harness();
    nodes.set('gpu-1', 'b1');
    link.hello('gpu-1', 'b1');
    const ac = new AbortController();
    const running = dispatcher.run(request(reboot, ac, { bootIDBeforeReboot: 'b1' }));
    expect(link.types()).toEqual(['action.start']);
    link.disconnect('gpu-1');
    // Same boot (the link only dropped): sent again, the agent's ledger attaches.
    link.hello('gpu-1', 'b1', [{ id: ID, state: 'rebooting' }]);
    expect(link.types()).toEqual(['action.start', 'action.start']);
    link.disconnect('gpu-1');
    // New boot, and a ledger that lost the record (a state dir that did not survive): not sent.
    link.hello('gpu-1', 'b2', []);
    expect(link.types()).toEqual(['action.start', 'action.start']);
    nodes.set('gpu-1', 'b2');
    expect(await running).toEqual({ kind: 'succeeded' });
    expect(link.types()).toEqual(['action.start', 'action.start']);
  });

  it('sends the Reboot when no boot was recorded before it', () => {
    const { link, dispatcher } = harness();
    link.hello('gpu-1', 'b2');
    const ac = new AbortController();
    void dispatcher.run(request(reboot, ac));
    expect(link.types()).toEqual(['action.start']);
    dispatcher.detach();
    ac.abort();
  });
});

describe('LinkDispatcher: cancel of a Reboot', () => {
  it('sends no cancel; confirms when the Node reports a new boot', async () => {
    const { link, nodes, dispatcher } = harness();
    nodes.set('gpu-1', 'b1');
    link.hello('gpu-1', 'b1');
    const ac = new AbortController();
    const running = dispatcher.run(request(reboot, ac, { bootIDBeforeReboot: 'b1' }));
    ac.abort();
    await tick();
    expect(await settled(running)).toBe(false);
    nodes.set('gpu-1', 'b2', false);
    expect(await running).toEqual({
      kind: 'cancelled',
      confirmed: true,
      message: 'the node rebooted (boot b2)',
    });
    expect(link.types()).toEqual(['action.start']);
    expect(nodes.watching()).toBe(0);
  });

  it('confirms at a hello on a new boot; not at all within the bound otherwise', async () => {
    const a = harness();
    a.link.hello('gpu-1', 'b1');
    const ac = new AbortController();
    const running = a.dispatcher.run(request(reboot, ac, { bootIDBeforeReboot: 'b1' }));
    a.link.disconnect('gpu-1');
    ac.abort();
    await tick();
    a.link.hello('gpu-1', 'b2');
    expect(await running).toMatchObject({ kind: 'cancelled', confirmed: true });
    expect(a.link.types()).toEqual(['action.start']);

    const b = harness(60);
    b.nodes.set('gpu-1', 'b1');
    b.link.hello('gpu-1', 'b1');
    const ac2 = new AbortController();
    const late = b.dispatcher.run(request(reboot, ac2, { bootIDBeforeReboot: 'b1' }));
    ac2.abort();
    const o = await late;
    expect(o).toMatchObject({ kind: 'cancelled', confirmed: false });
    expect(o.message).toMatch(/a Reboot already sent cannot be cancelled/);
  });

  it('confirms at once when the reboot had already happened', async () => {
    const { link, nodes, dispatcher } = harness();
    nodes.set('gpu-1', 'b1');
    link.hello('gpu-1', 'b1');
    const ac = new AbortController();
    const running = dispatcher.run(request(reboot, ac, { bootIDBeforeReboot: 'b1' }));
    link.result('gpu-1', ID, 'succeeded');
    await tick();
    // Waiting for the Node to show the new boot: the agent reported the reboot done.
    ac.abort();
    expect(await running).toEqual({
      kind: 'cancelled',
      confirmed: true,
      message: 'the reboot had already happened',
    });
  });
});

describe('LinkDispatcher: results', () => {
  it('fails the step with reason LedgerUnreadable when the agent refuses the ID', async () => {
    const { link, dispatcher } = harness();
    link.hello('gpu-1', 'b1');
    const running = dispatcher.run(request(script, new AbortController()));
    link.result('gpu-1', ID, 'failed', 'LedgerUnreadable: record exists but does not parse');
    expect(await running).toEqual({
      kind: 'failed',
      message: 'LedgerUnreadable: record exists but does not parse',
      reason: 'LedgerUnreadable',
    });
  });

  it('does not take a LedgerUnreadable refusal as the confirmation of a cancel', async () => {
    const { link, dispatcher } = harness();
    link.hello('gpu-1', 'b1');
    const ac = new AbortController();
    const running = dispatcher.run(request(script, ac));
    ac.abort();
    await tick();
    link.result('gpu-1', ID, 'failed', 'LedgerUnreadable: record exists but does not parse');
    const o: NodeActionOutcome = await running;
    expect(o).toMatchObject({ kind: 'cancelled', confirmed: false });
    expect(o.message).toMatch(/^LedgerUnreadable/);
  });

  it('answers unavailable without an agent, and re-sends the start at every hello', async () => {
    const { link, dispatcher } = harness();
    const ac = new AbortController();
    expect(await dispatcher.run(request(script, ac))).toMatchObject({ kind: 'unavailable' });
    link.hello('gpu-1', 'b1');
    const running = dispatcher.run(request(script, ac));
    link.disconnect('gpu-1');
    link.hello('gpu-1', 'b1', [{ id: ID, state: 'running' }]);
    expect(link.types()).toEqual(['action.start', 'action.start']);
    link.result('gpu-1', ID, 'succeeded');
    expect(await running).toEqual({ kind: 'succeeded' });
  });
});

describe('LinkDispatcher.expects: what the link may store and forward', () => {
  it('is true only for an action dispatched to that node, while it is waited on', async () => {
    const { link, dispatcher } = harness();
    const expects = (node: string, id: string) => link.handlers?.expects(node, id);
    link.hello('gpu-1', 'b1');
    expect(expects('gpu-1', ID)).toBe(false);
    const ac = new AbortController();
    const run = dispatcher.run(request(script, ac));
    await tick();
    expect(expects('gpu-1', ID)).toBe(true);
    expect(expects('gpu-2', ID)).toBe(false);
    expect(expects('gpu-1', 'made-up')).toBe(false);
    link.result('gpu-1', ID, 'succeeded');
    await run;
    expect(expects('gpu-1', ID)).toBe(false);
  });

  it('stays true while a cancel waits for its confirmation', async () => {
    const { link, dispatcher } = harness();
    const expects = (node: string, id: string) => link.handlers?.expects(node, id);
    link.hello('gpu-1', 'b1');
    const ac = new AbortController();
    const run = dispatcher.run(request(script, ac));
    await tick();
    ac.abort();
    await tick();
    expect(link.types()).toContain('action.cancel');
    expect(expects('gpu-1', ID)).toBe(true);
    link.result('gpu-1', ID, 'cancelled');
    expect(await run).toMatchObject({ kind: 'cancelled', confirmed: true });
    expect(expects('gpu-1', ID)).toBe(false);
  });
});
