// The leader's degraded-GPU taint loop (--degraded-gpu-taint): every tick it looks at every
// Node in the one Node cache and asks decide.ts. Each write is a resourceVersion-guarded merge
// patch decided again on a fresh read, so a stale cache, another controller's taint or a second
// leader never makes it taint twice or remove a taint that is not its own. What it did is
// recorded on the Node (DEGRADED_GPU_TAINT_ANNOTATION): a new leader carries on from there.
import { CoreV1Api, type KubeConfig, type V1Node } from '@kubernetes/client-node';
import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../../shared/log.js';
import { DEGRADED_GPU_TAINT_ANNOTATION } from '../../shared/maintenance-keys.js';
import { GPU_HEALTH_DETAIL_ANNOTATION } from '../../shared/labels.js';
import { isNotFound, isTransient } from '../../shared/kube-errors.js';
import type { EventRecorder } from '../events.js';
import type { LabelPredicate } from '../downtime/selector.js';
import type { NodeCache } from '../nodes/node-cache.js';
import { guardedNodeUpdate } from '../nodes/node-ops.js';
import type { TaintSpec } from '../nodes/taints.js';
import { decideGpuTaint, formatTaint, type GpuTaintChange } from './decide.js';

export interface GpuHealthTainterOptions {
  readonly kc: KubeConfig;
  readonly log: Logger;
  readonly cache: Pick<NodeCache, 'list' | 'synced'>;
  readonly taint: TaintSpec;
  readonly registry: Registry;
  readonly events: EventRecorder;
  /** Only these nodes are looked at (default: all). */
  readonly select?: LabelPredicate;
  readonly tickMs?: number;
}

const viewOf = (n: V1Node) => ({
  labels: n.metadata?.labels ?? {},
  annotations: n.metadata?.annotations ?? {},
  taints: n.spec?.taints ?? [],
});

export class GpuHealthTainter {
  readonly #core: CoreV1Api;
  readonly #changes: Counter<'action'>;
  #timer: NodeJS.Timeout | undefined;
  #busy = false;
  #stopped = false;

  constructor(private readonly opts: GpuHealthTainterOptions) {
    this.#core = opts.kc.makeApiClient(CoreV1Api);
    this.#changes = new Counter({
      name: 'noma_degraded_gpu_taints_total',
      help: 'Degraded-GPU taints added (taint), removed (untaint), or records of a taint someone else removed dropped (forget)',
      labelNames: ['action'],
      registers: [opts.registry],
    });
  }

  async start(): Promise<void> {
    await this.opts.cache.synced(30_000);
    this.#timer = setInterval(() => {
      void this.tick();
    }, this.opts.tickMs ?? 2_000);
    this.#timer.unref();
    this.opts.log.info(
      { taint: formatTaint(this.opts.taint) },
      'tainting nodes whose GPUs are degraded',
    );
    await this.tick();
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
  }

  /** One pass over the cache; only nodes with something to change cost a request. */
  async tick(): Promise<void> {
    if (this.#busy || this.#stopped) return;
    this.#busy = true;
    try {
      const select = this.opts.select ?? (() => true);
      const due = this.opts.cache
        .list()
        .filter((n) => select(n.metadata?.labels))
        .filter((n) => decideGpuTaint(viewOf(n), this.opts.taint) !== undefined);
      await Promise.all(due.map((n) => this.#apply(n.metadata?.name ?? '')));
    } finally {
      this.#busy = false;
    }
  }

  /** Decides again on a fresh read and writes guarded by its resourceVersion; 409: again. */
  async #apply(name: string): Promise<void> {
    const { log } = this.opts;
    let decided: GpuTaintChange | undefined;
    try {
      const written = await guardedNodeUpdate(
        this.#core,
        (fn) => fn(),
        name,
        (node) => {
          decided = decideGpuTaint(viewOf(node), this.opts.taint);
          if (decided === undefined) return undefined;
          return {
            metadata: { annotations: { [DEGRADED_GPU_TAINT_ANNOTATION]: decided.annotation } },
            spec: { taints: decided.taints },
          };
        },
      );
      if (written !== undefined && decided !== undefined) this.#done(written, decided);
    } catch (err) {
      if (isNotFound(err)) return;
      // Anything else waits for the next tick; a refusal is logged louder than a blip.
      const level = isTransient(err) ? 'warn' : 'error';
      log[level]({ err, node: name }, 'degraded-GPU taint: could not update the node');
    }
  }

  #done(node: V1Node, change: GpuTaintChange): void {
    const name = node.metadata?.name ?? '';
    const taint = formatTaint(this.opts.taint);
    this.#changes.inc({ action: change.action });
    this.opts.log.info({ node: name, action: change.action, taint }, 'degraded-GPU taint');
    if (change.action === 'forget') return;
    const detail = node.metadata?.annotations?.[GPU_HEALTH_DETAIL_ANNOTATION];
    const target = { apiVersion: 'v1', kind: 'Node', name, uid: node.metadata?.uid };
    if (change.action === 'taint') {
      const why = detail === undefined ? '' : ` (${detail.slice(0, 512)})`;
      this.opts.events.record(
        target,
        'Warning',
        'DegradedGpuTainted',
        `the agent reports lost GPUs${why}; noma added the taint ${taint} until the node is repaired or its inventory accepted`,
      );
    } else {
      const removed = node.metadata?.annotations?.[DEGRADED_GPU_TAINT_ANNOTATION] ?? taint;
      this.opts.events.record(
        target,
        'Normal',
        'DegradedGpuUntainted',
        `the node's GPUs are healthy again (or no longer reported); noma removed its taint ${removed}`,
      );
    }
  }
}
