import type { V1Node } from '@kubernetes/client-node';
import type { Logger } from '../../shared/log.js';
import { retry } from '../../shared/retry.js';
import type { AgentMetrics } from '../health/metrics.js';
import type { NodeApi } from '../kube/client.js';
import type { Labels } from './compute.js';
import { planLabels, type LabelPlan } from './plan.js';

export interface NodeLabelerState {
  /** The desired labels are on the Node (as of the last reconcile). */
  readonly applied: boolean;
  /** The watch on the Node is established. */
  readonly watchHealthy: boolean;
  readonly lastError: string | undefined;
  readonly desired: Readonly<Labels> | undefined;
}

export interface NodeLabelerOptions {
  readonly api: NodeApi;
  readonly nodeName: string;
  readonly log: Logger;
  readonly metrics: AgentMetrics;
  /** Keys owned according to the state dir, for when the annotation was lost. */
  readonly ownedAtStart?: readonly string[];
  /** Called after each successful patch with the keys now owned. */
  readonly onApplied?: (owned: readonly string[]) => void;
  /** The API server ends each watch after about this long; we then resync with a GET. */
  readonly watchTimeoutSeconds?: number;
  /** Sees the Node as read at each resync and at each watch event (e.g. for annotations). */
  readonly onNode?: (node: V1Node) => void;
}

type Source = 'discovery' | 'watch' | 'resync';

function errorText(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/**
 * Keeps the agent's labels on its own Node: applies the desired set, removes keys it owned and
 * no longer produces, and puts back managed labels that someone removed or changed. Knows
 * nothing about GPUs; the labels come from setDesired().
 */
export class NodeLabeler {
  private desired: Labels | undefined;
  private desiredAnnotations: Record<string, string | null> = {};
  private lastApplied: Labels = {};
  private ownedInMemory: readonly string[];
  private applied = false;
  private watchHealthy = false;
  private lastError: string | undefined;
  private stopped = false;
  private readonly stopSignal = new AbortController();
  /** Reconciles run one at a time, in order, so two never patch from the same stale view. */
  private queue: Promise<void> = Promise.resolve();
  private watchLoopDone: Promise<void> = Promise.resolve();

  constructor(private readonly opts: NodeLabelerOptions) {
    this.ownedInMemory = opts.ownedAtStart ?? [];
  }

  get state(): NodeLabelerState {
    return {
      applied: this.applied,
      watchHealthy: this.watchHealthy,
      lastError: this.lastError,
      desired: this.desired,
    };
  }

  /**
   * Sets the labels the Node should carry, and annotations to keep (value) or remove (null),
   * and reconciles now. Rejects if the API refused.
   */
  async setDesired(
    labels: Labels,
    annotations: Readonly<Record<string, string | null>> = {},
  ): Promise<void> {
    this.desired = { ...labels };
    this.desiredAnnotations = { ...annotations };
    this.applied = false;
    await this.enqueue('discovery');
  }

  /** Starts watching the Node; returns at once. */
  start(): void {
    this.watchLoopDone = this.watchLoop();
  }

  /** Stops the watch. Labels stay as they are: shutting down is not a reason to remove them. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopSignal.abort();
    await this.watchLoopDone;
    await this.queue.catch(() => undefined);
  }

  private enqueue(source: Source, seen?: V1Node): Promise<void> {
    const run = this.queue.then(() => this.reconcile(source, seen));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async readNode(): Promise<V1Node> {
    return this.opts.api.readNode(this.opts.nodeName);
  }

  private plan(node: V1Node, desired: Labels): LabelPlan {
    return planLabels({
      node: { labels: node.metadata?.labels ?? {}, annotations: node.metadata?.annotations ?? {} },
      desired,
      lastApplied: this.lastApplied,
      ownedInMemory: this.ownedInMemory,
      annotations: this.desiredAnnotations,
    });
  }

  private async reconcile(source: Source, seen?: V1Node): Promise<void> {
    const desired = this.desired;
    if (desired === undefined || this.stopped) return;
    const { log, metrics } = this.opts;
    try {
      // A watch event may predate our own last patch; re-read before acting on it.
      if (seen !== undefined && this.plan(seen, desired).patch === undefined) return;
      const node = await this.readNode();
      const plan = this.plan(node, desired);
      if (plan.patch !== undefined) {
        await this.opts.api.patchNodeMerge(this.opts.nodeName, plan.patch);
        const reason = plan.restored.length > 0 && source !== 'discovery' ? 'restore' : 'apply';
        metrics.labelPatches.inc({ reason });
        log.info(
          { source, set: plan.set, removed: plan.remove, restored: plan.restored },
          'node labels patched',
        );
        if (plan.restored.length > 0) {
          metrics.labelsRestored.inc(plan.restored.length);
          await this.emitRestoredEvent(node, plan);
        }
      }
      this.lastApplied = { ...desired };
      this.ownedInMemory = Object.keys(desired).sort();
      this.applied = this.desired === desired;
      this.lastError = undefined;
      if (plan.patch !== undefined) this.opts.onApplied?.(this.ownedInMemory);
    } catch (err) {
      this.applied = false;
      this.lastError = `labelling Node ${this.opts.nodeName}: ${errorText(err)}`;
      metrics.labelPatchErrors.inc();
      log.warn({ source, err: errorText(err) }, 'could not label the node');
      throw err;
    }
  }

  private async emitRestoredEvent(node: V1Node, plan: LabelPlan): Promise<void> {
    const now = new Date();
    const keys = plan.restored.map((k) => `${k}=${plan.set[k] ?? ''}`).join(', ');
    try {
      // Node events live in "default", as the kubelet's do.
      await this.opts.api.createEvent('default', {
        metadata: { generateName: `${this.opts.nodeName}.noma-` },
        involvedObject: {
          apiVersion: 'v1',
          kind: 'Node',
          name: this.opts.nodeName,
          ...(node.metadata?.uid === undefined ? {} : { uid: node.metadata.uid }),
        },
        reason: 'LabelsRestored',
        message: `noma agent put back managed labels that were removed or changed: ${keys}`,
        type: 'Normal',
        source: { component: 'noma-agent', host: this.opts.nodeName },
        reportingComponent: 'noma.dev/agent',
        reportingInstance: this.opts.nodeName,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      });
    } catch (err) {
      this.opts.log.warn({ err: errorText(err) }, 'could not record the LabelsRestored event');
    }
  }

  /**
   * A list+watch of one object: GET (and reconcile) to get a resourceVersion, watch from there
   * until the server ends the watch or it fails, then again, with backoff after failures (reset
   * by a watch that the server ended). The GET after each watch is the periodic resync that
   * catches anything a watch missed.
   */
  private async watchLoop(): Promise<void> {
    const { log, metrics, nodeName } = this.opts;
    const signal = this.stopSignal.signal;
    let first = true;
    while (!signal.aborted) {
      await retry(
        () => {
          if (!first) metrics.watchRestarts.inc();
          first = false;
          return this.listWatch(signal);
        },
        {
          baseMs: 500,
          maxMs: 30_000,
          // Any failure, a watch ERROR event too: the next GET starts over.
          retryable: () => !this.stopped,
          signal,
          onRetry: (err, _attempt, delay) => {
            log.warn({ err: errorText(err), retryInMs: delay }, `watch on Node ${nodeName} failed`);
          },
        },
      ).catch(() => undefined); // only a stop ends the retries, and the loop with them
    }
  }

  /** One GET (with a resync) and one watch from it, until the server ends the watch. */
  private async listWatch(signal: AbortSignal): Promise<void> {
    const { nodeName, api } = this.opts;
    const timeout = this.opts.watchTimeoutSeconds ?? 300;
    try {
      const node = await this.readNode();
      this.opts.onNode?.(node);
      // Its failure is recorded in lastError; it must not count as a watch failure.
      if (this.desired !== undefined) await this.enqueue('resync').catch(() => undefined);
      this.watchHealthy = true;
      const failure: { error?: Error } = {};
      await api.watchNode(
        nodeName,
        node.metadata?.resourceVersion,
        // Jitter keeps a fleet of agents from resyncing in lockstep.
        Math.round(timeout * (0.8 + 0.4 * Math.random())),
        (event) => {
          if (event.type === 'ERROR') {
            // 410 Gone and friends: the resourceVersion is too old; start over with a GET.
            failure.error ??= new Error(`watch error: ${JSON.stringify(event.object)}`);
          } else if (event.type === 'ADDED' || event.type === 'MODIFIED') {
            this.opts.onNode?.(event.object);
            this.enqueue('watch', event.object).catch(() => undefined);
          }
        },
        signal,
      );
      if (failure.error !== undefined) throw failure.error;
    } finally {
      this.watchHealthy = false;
    }
  }
}
