// The leader's unplanned-downtime loop: every tick it reads every node from the one Node cache,
// asks decide.ts what to do and carries that out. Each write is a resourceVersion-guarded patch
// that re-decides on the fresh node, so a stale cache, another controller or a second leader
// can never make it taint twice or untaint what noma did not taint. What noma did lives on the
// node (DOWNTIME_ANNOTATION): a new leader carries on from there.
import { CoreV1Api, type KubeConfig, type V1Node } from '@kubernetes/client-node';
import type { LimitFunction } from 'p-limit';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../../shared/log.js';
import { DOWNTIME_ANNOTATION } from '../../shared/maintenance-keys.js';
import { isNotFound, isTransient } from '../../shared/kube-errors.js';
import type { Notifier } from '../actions/notify.js';
import type { EventRecorder } from '../events.js';
import type { NodeCache } from '../nodes/node-cache.js';
import { guardedNodeUpdate } from '../nodes/node-ops.js';
import { addTaints, sameTaint } from '../nodes/taints.js';
import {
  decideFleet,
  decideNode,
  formatRecord,
  nodeFacts,
  type DowntimeConfig,
  type FleetState,
  type NodeDecision,
} from './decide.js';
import type { LabelPredicate } from './selector.js';

/** Partition Events per episode: enough to find the nodes, never a flood on a big outage. */
const PARTITION_EVENTS = 20;

export interface DowntimeOptions {
  readonly kc: KubeConfig;
  readonly log: Logger;
  readonly cache: Pick<NodeCache, 'list' | 'synced'>;
  readonly config: DowntimeConfig;
  readonly registry: Registry;
  readonly events: EventRecorder;
  readonly notifier: Notifier;
  /** The agent link's view: an agent connected now, or since this process leads. */
  readonly agents: {
    isConnected(node: string): boolean;
    hasConnected(node: string): boolean;
  };
  readonly limit: LimitFunction;
  /** Only these nodes are watched and counted (default: all). */
  readonly select?: LabelPredicate;
  readonly tickMs?: number;
}

/** What this process saw of a node: when its readiness last changed, and its agent. */
interface Seen {
  ready: boolean;
  since: number;
  agentSeen: boolean;
  partitionNoted: boolean;
  hold: string;
}

const fmtMs = (ms: number): string => `${Math.round(ms / 100) / 10}s`;
const taintText = (t: DowntimeConfig['taint']): string =>
  `${t.key}${t.value === undefined ? '' : `=${t.value}`}:${t.effect}`;

export interface DowntimeReadiness {
  readonly nodes: number;
  readonly notReady: number;
  readonly tainted: number;
  readonly cap: number;
  readonly partition: boolean;
  readonly detail?: string;
}

export class DowntimeWatch {
  readonly #seen = new Map<string, Seen>();
  readonly #core: CoreV1Api;
  #timer: NodeJS.Timeout | undefined;
  #busy = false;
  #stopped = false;
  #fleet: FleetState = { total: 0, notReady: 0, cap: 1, partition: false };
  #tainted = 0;
  readonly #taints: Counter<'action'>;
  readonly #suppressions: Counter;

  constructor(private readonly opts: DowntimeOptions) {
    this.#core = opts.kc.makeApiClient(CoreV1Api);
    const self = (): DowntimeWatch => this;
    new Gauge({
      name: 'noma_unplanned_downtime_nodes_down',
      help: 'Nodes (in scope, not in a maintenance) whose Ready condition is not True',
      registers: [opts.registry],
      collect() {
        this.set(self().#fleet.notReady);
      },
    });
    new Gauge({
      name: 'noma_unplanned_downtime_nodes_tainted',
      help: 'Nodes carrying the unplanned-downtime taint noma put there',
      registers: [opts.registry],
      collect() {
        this.set(self().#tainted);
      },
    });
    new Gauge({
      name: 'noma_unplanned_downtime_partition',
      help: '1 while more nodes are down than --unplanned-downtime-max-nodes: no node is tainted',
      registers: [opts.registry],
      collect() {
        this.set(self().#fleet.partition ? 1 : 0);
      },
    });
    this.#suppressions = new Counter({
      name: 'noma_unplanned_downtime_partition_suppressions_total',
      help: 'Times the downtime taint was suppressed because too many nodes were down at once',
      registers: [opts.registry],
    });
    this.#taints = new Counter({
      name: 'noma_unplanned_downtime_taints_total',
      help: 'Unplanned-downtime taints added (taint) and removed (untaint)',
      labelNames: ['action'],
      registers: [opts.registry],
    });
  }

  async start(): Promise<void> {
    await this.opts.cache.synced(30_000);
    const { afterMs, settleMs } = this.opts.config;
    const tickMs =
      this.opts.tickMs ?? Math.min(5_000, Math.max(250, Math.min(afterMs, settleMs) / 4));
    this.#timer = setInterval(() => {
      void this.tick();
    }, tickMs);
    this.#timer.unref();
    this.opts.log.info(
      { afterMs, settleMs, taint: taintText(this.opts.config.taint), tickMs },
      'watching nodes for unplanned downtime',
    );
    await this.tick();
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
  }

  readiness(): DowntimeReadiness {
    const f = this.#fleet;
    return {
      nodes: f.total,
      notReady: f.notReady,
      tainted: this.#tainted,
      cap: f.cap,
      partition: f.partition,
      ...(f.partition
        ? {
            detail: `${f.notReady} nodes not Ready at once, more than ${f.cap}: a partition or control-plane problem is assumed and no node gets the downtime taint`,
          }
        : {}),
    };
  }

  /** One pass over every node; a pass still running (slow API server) skips this tick. */
  async tick(): Promise<void> {
    if (this.#busy || this.#stopped) return;
    this.#busy = true;
    try {
      const now = Date.now();
      const select = this.opts.select ?? (() => true);
      const nodes = this.opts.cache.list().filter((n) => select(n.metadata?.labels));
      const facts = nodes.map((n) => nodeFacts(n, this.#observe(n, now), this.opts.config));
      const names = new Set(facts.map((f) => f.name));
      for (const name of this.#seen.keys()) if (!names.has(name)) this.#seen.delete(name);
      const { fleet, decisions } = decideFleet(facts, now, this.opts.config);
      this.#tainted = facts.filter((f) => f.record !== undefined && f.tainted).length;
      this.#onFleet(fleet);
      const byName = new Map(nodes.map((n) => [n.metadata?.name ?? '', n]));
      await Promise.all(
        decisions.map(({ name, decision }) => this.#act(name, decision, byName.get(name))),
      );
    } finally {
      this.#busy = false;
    }
  }

  #observe(node: V1Node, now: number) {
    const name = node.metadata?.name ?? '';
    const ready = node.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
    const connected = this.opts.agents.isConnected(name);
    let s = this.#seen.get(name);
    if (s === undefined) {
      s = { ready, since: now, agentSeen: false, partitionNoted: false, hold: '' };
      this.#seen.set(name, s);
    } else if (s.ready !== ready) {
      s.ready = ready;
      s.since = now;
      s.partitionNoted = false;
    }
    if (connected || this.opts.agents.hasConnected(name)) s.agentSeen = true;
    return { agentConnected: connected, hadAgent: s.agentSeen, firstSeen: s.since };
  }

  #onFleet(fleet: FleetState): void {
    const was = this.#fleet.partition;
    this.#fleet = fleet;
    if (fleet.partition === was) return;
    const { log } = this.opts;
    if (fleet.partition) {
      this.#suppressions.inc();
      const text = `noma: ${fleet.notReady} of ${fleet.total} nodes are not Ready at once (more than ${fleet.cap}); assuming a partition or a control-plane problem, no node gets the downtime taint until fewer are down`;
      log.warn({ ...fleet }, 'too many nodes down at once: downtime taints suppressed');
      this.#notify(text);
    } else {
      log.info({ ...fleet }, 'fewer nodes down: downtime taints resume');
    }
  }

  async #act(name: string, d: NodeDecision, node: V1Node | undefined): Promise<void> {
    if (node === undefined) return;
    this.#noteHold(name, d, node);
    if (d.action !== 'taint' && d.action !== 'untaint' && d.action !== 'forget') return;
    try {
      const done = await this.#write(name, d.action, node);
      if (done !== undefined) this.#announce(done, d);
    } catch (err) {
      const level = isTransient(err) ? 'info' : 'warn';
      this.opts.log[level](
        { err, node: name, action: d.action },
        'downtime write failed; next tick retries',
      );
    }
  }

  /** Logs (and for a partition, records an Event) when a node starts waiting for a reason. */
  #noteHold(name: string, d: NodeDecision, node: V1Node): void {
    const s = this.#seen.get(name);
    if (s === undefined) return;
    const reason = d.action === 'hold' ? d.reason : '';
    if (reason === s.hold) return;
    s.hold = reason;
    if (reason === '') return;
    this.opts.log.info({ node: name, reason }, 'downtime: node held');
    if (reason === 'agent') {
      this.opts.events.record(
        nodeTarget(node),
        'Normal',
        'UnplannedDowntimeWaitingForAgent',
        'Ready again, but its agent has not reconnected: the downtime taint stays until it does',
      );
    }
    if (reason === 'partition' && !s.partitionNoted) {
      s.partitionNoted = true;
      const noted = [...this.#seen.values()].filter((x) => x.partitionNoted).length;
      if (noted > PARTITION_EVENTS) return;
      this.opts.events.record(
        nodeTarget(node),
        'Warning',
        'UnplannedDowntimeSuppressed',
        `not Ready for longer than ${fmtMs(this.opts.config.afterMs)}, but ${this.#fleet.notReady} nodes are down at once (more than ${this.#fleet.cap}): no downtime taint while that lasts`,
      );
    }
  }

  /**
   * Applies `action` to the fresh node, re-deciding on it (the cache may be behind); returns the
   * node as written, or undefined when there was nothing (left) to do.
   */
  async #write(
    name: string,
    action: 'taint' | 'untaint' | 'forget',
    known: V1Node,
  ): Promise<V1Node | undefined> {
    const { config } = this.opts;
    const change = (node: V1Node): Record<string, unknown> | undefined => {
      const s = this.#seen.get(name);
      const facts = nodeFacts(
        node,
        {
          agentConnected: this.opts.agents.isConnected(name),
          hadAgent: s?.agentSeen ?? false,
          firstSeen: s?.since ?? Date.now(),
        },
        config,
      );
      // The partition was decided over the fleet; here only this node's own facts can change.
      if (decideNode(facts, Date.now(), config, false).action !== action) return undefined;
      const current = node.spec?.taints ?? [];
      const now = new Date();
      const record =
        action === 'taint'
          ? formatRecord({
              taint: config.taint,
              downSince: new Date(facts.notReadySince ?? now.getTime()).toISOString(),
              taintedAt: now.toISOString(),
              agent: facts.hadAgent,
            })
          : null;
      const drop = facts.record?.taint ?? config.taint;
      const taints =
        action === 'taint'
          ? addTaints(current, [config.taint])
          : action === 'untaint'
            ? current.filter((t) => !sameTaint(t, drop))
            : undefined;
      return {
        metadata: { annotations: { [DOWNTIME_ANNOTATION]: record } },
        ...(taints === undefined ? {} : { spec: { taints } }),
      };
    };
    try {
      return await guardedNodeUpdate(this.#core, this.opts.limit, name, change, known);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  #announce(node: V1Node, d: NodeDecision): void {
    const name = node.metadata?.name ?? '';
    const taint = taintText(this.opts.config.taint);
    if (d.action === 'taint') {
      this.#taints.inc({ action: 'taint' });
      const msg = `not Ready for ${fmtMs(d.downForMs)} (more than ${fmtMs(this.opts.config.afterMs)}): tainted ${taint} so that its workloads move`;
      this.opts.log.warn({ node: name, downForMs: d.downForMs, taint }, 'downtime: node tainted');
      this.opts.events.record(nodeTarget(node), 'Warning', 'UnplannedDowntime', msg);
      this.#notify(`noma: node ${name} ${msg}`);
    } else if (d.action === 'untaint') {
      this.#taints.inc({ action: 'untaint' });
      const msg = `Ready again for ${fmtMs(d.readyForMs)}: downtime taint removed, the node takes workloads again`;
      this.opts.log.info({ node: name, readyForMs: d.readyForMs }, 'downtime: node untainted');
      this.opts.events.record(nodeTarget(node), 'Normal', 'UnplannedDowntimeOver', msg);
      this.#notify(`noma: node ${name} ${msg}`);
    } else {
      this.opts.log.info({ node: name }, 'downtime: taint removed by someone else; record dropped');
    }
  }

  #notify(text: string): void {
    // Best effort, off the loop: a chat outage must not hold the next tick.
    void this.opts.notifier
      .send({ channel: '', text: text.slice(0, 1024) }, AbortSignal.timeout(60_000))
      .catch(() => undefined);
  }
}

const nodeTarget = (node: V1Node) => ({
  apiVersion: 'v1',
  kind: 'Node',
  name: node.metadata?.name ?? '',
  uid: node.metadata?.uid,
});
