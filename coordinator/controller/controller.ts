// Watches NodeMaintenances in all namespaces (or the ones given) and keeps one MaintenanceRun
// per object. Work per object is serialized inside its run; the informers only tell runs about
// new versions.
import {
  CoreV1Api,
  CustomObjectsApi,
  makeInformer,
  PatchStrategy,
  setHeaderOptions,
  type Informer,
  type KubeConfig,
  type KubernetesObject,
  type ObjectCache,
} from '@kubernetes/client-node';
import { EventEmitter, once } from 'node:events';
import {
  GROUP,
  PLURAL,
  StatusSchema,
  VERSION,
  formatErrors,
  validate,
  validateNodeMaintenance,
  type NodeMaintenance,
} from '../../shared/api/index.js';
import type { Logger } from '../../shared/log.js';
import {
  FINALIZER,
  RESTORE_ANNOTATION,
  RETRY_ANNOTATION,
  formatNodeList,
  parseNodeList,
} from '../../shared/maintenance-keys.js';
import type { ActionDispatcher } from '../actions/dispatcher.js';
import { runsAsPod } from '../actions/pod-job.js';
import type { Notifier } from '../actions/notify.js';
import type { EventRecorder } from '../events.js';
import type { Claim } from '../nodes/claims.js';
import { kubeNodeCache, type NodeCache } from '../nodes/node-cache.js';
import type { NodeOps } from '../nodes/node-ops.js';
import { isConflict, isNotFound } from '../../shared/kube-errors.js';
import { retryOnConflict } from '../../shared/retry.js';
import type { DrainFn } from './ports.js';
import { MaintenanceRun, type Fleet, type RunDeps } from './run.js';
import {
  createStatusStore,
  fenceEpoch,
  kubeStatusReader,
  kubeStatusWriter,
  type StatusFence,
  type StatusWriter,
} from './status-store.js';

export interface ControllerOptions {
  readonly kc: KubeConfig;
  readonly log: Logger;
  readonly nodes: NodeOps;
  /** The leader's Node informer (readiness and cordon of selected nodes); made in start(). */
  readonly nodeCache?: NodeCache;
  readonly drain: DrainFn;
  readonly dispatcher: ActionDispatcher;
  readonly notifier: Notifier;
  readonly events: EventRecorder;
  readonly globalLimit: number;
  readonly maxSelectedNodes: number;
  readonly statusIntervalMs?: number;
  readonly agentRetryMs?: number;
  readonly resyncMs?: number;
  readonly skipPod?: MaintenanceRunSkip;
  readonly statusWriter?: (cr: NodeMaintenance) => StatusWriter;
  /** Watch only these namespaces, one informer each (default: all, one informer). */
  readonly watchNamespaces?: readonly string[] | undefined;
  /** A node that has not moved this long is Stuck (0 = never). */
  readonly stuckAfterMs?: number;
  /** How long a node spent in a phase, as it leaves it (the per-phase histogram). */
  readonly observePhase?: RunDeps['observePhase'];
  /**
   * The leader's fence: the epoch of its Lease and a signal aborted when leadership is lost.
   * Status writes carry the epoch (never lower than one already written) and stop on loss.
   */
  readonly fence?: StatusFence;
  /** A newer leader writes status: this process is deposed and must stop. */
  readonly onDeposed?: (why: string) => void;
}
type MaintenanceRunSkip = Parameters<DrainFn>[1]['skipPod'];
type NodeMaintenanceInformer = Informer<KubernetesObject> & ObjectCache<KubernetesObject>;

export class Controller {
  private readonly runs = new Map<string, MaintenanceRun>();
  private readonly queues = new Map<string, Promise<void>>();
  private readonly bus = new EventEmitter();
  private informers: NodeMaintenanceInformer[] = [];
  private nodeCache: NodeCache | undefined;
  private resync: NodeJS.Timeout | undefined;
  private stopped = false;
  private lastSync = 0;
  /** The watch is up (connected since its last error): a quiet watch is a fresh one. */
  private watching = false;
  /** The epoch status writes carry, fixed at the first list (fenceEpoch). */
  private fence: StatusFence | undefined;
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;
  readonly fleet: Fleet;

  constructor(private readonly opts: ControllerOptions) {
    this.custom = opts.kc.makeApiClient(CustomObjectsApi);
    this.core = opts.kc.makeApiClient(CoreV1Api);
    this.bus.setMaxListeners(0);
    const runs = this.runs;
    const bus = this.bus;
    this.fleet = {
      heldElsewhere(self, node) {
        for (const run of runs.values()) {
          if (run !== self && run.heldNodes().includes(node)) return run.key;
        }
        return undefined;
      },
      unavailableCount(except) {
        const all = new Set<string>();
        for (const run of runs.values()) for (const n of run.unavailableNodes()) all.add(n);
        all.delete(except);
        return all.size;
      },
      async changed(ms, signal) {
        await Promise.race([
          once(bus, 'changed', { signal }).catch(() => undefined),
          new Promise((r) => setTimeout(r, ms).unref()),
        ]);
      },
      notifyChanged() {
        bus.emit('changed');
      },
    };
  }

  /** True when the informer has listed recently (for /readyz). */
  fresh(maxAgeMs: number): boolean {
    return Date.now() - this.lastSync < maxAgeMs;
  }

  runsSnapshot(): MaintenanceRun[] {
    return [...this.runs.values()];
  }

  /**
   * Resolves once the coordinator's view is rebuilt: the Node cache listed (claims, readiness)
   * and every NodeMaintenance of the first list has its run. No run admits a node before, so a
   * maintenance listed first after a restart cannot take a node another one holds.
   */
  private readonly ready = (() => {
    let resolve: () => void = () => undefined;
    const promise = new Promise<void>((r) => {
      resolve = r;
    });
    return { promise, resolve };
  })();

  async start(): Promise<void> {
    this.nodeCache =
      this.opts.nodeCache ??
      kubeNodeCache(this.opts.kc, this.opts.log.child({ component: 'node-cache' }));
    // One informer per watched namespace (one for all when none is given). Objects wait until
    // every informer has listed once: the fence is the highest epoch any list shows, and no
    // run may be made before it is fixed.
    const scopes = this.opts.watchNamespaces ?? [undefined];
    const epochs = new Map<string | undefined, number>();
    let held: KubernetesObject[] | undefined = [];
    const release = () => {
      if (held === undefined || epochs.size < scopes.length) return;
      const waiting = held;
      held = undefined;
      for (const obj of waiting) this.reconcileLogged(obj);
    };
    const onObject = (obj: KubernetesObject) => {
      this.lastSync = Date.now();
      release();
      if (held === undefined) this.reconcileLogged(obj);
      else held.push(obj);
    };
    this.informers = scopes.map((ns) =>
      this.watchScope(ns, onObject, (items) => {
        const leaseEpoch = this.opts.fence?.epoch ?? 0;
        epochs.set(ns, Math.max(epochs.get(ns) ?? 0, fenceEpoch(leaseEpoch, items)));
        if (epochs.size === scopes.length) this.fixFence([...epochs.values()]);
      }),
    );
    // The first list can fail (API server starting, CRD storage still initializing: 429);
    // the error handler restarts the informer, so wait for a list of each to succeed.
    await Promise.all(
      this.informers.map((informer) =>
        informer.start().catch((err: unknown) => {
          this.opts.log.warn({ err }, 'first NodeMaintenance list failed; retrying');
        }),
      ),
    );
    while (epochs.size < scopes.length && !this.stopped) {
      await new Promise((r) => setTimeout(r, 100));
    }
    release();
    // The first lists' objects are queued for reconcile by now; their runs exist once those
    // reconciles are through.
    await Promise.all([...this.queues.values()]);
    await this.nodeCache.synced(30_000);
    this.ready.resolve();
    // Level-based: every object is looked at again periodically, even without an event.
    this.resync = setInterval(() => {
      // With no NodeMaintenance changing, nothing else says the watch is alive.
      if (this.watching) this.lastSync = Date.now();
      for (const informer of this.informers) {
        for (const obj of informer.list()) this.reconcileLogged(obj);
      }
    }, this.opts.resyncMs ?? 60_000);
    this.resync.unref();
  }

  /**
   * The informer of NodeMaintenances in `ns` (undefined: all namespaces). `onList` sees each
   * list's objects (the first, and those after a failed watch).
   */
  private watchScope(
    ns: string | undefined,
    onObject: (obj: KubernetesObject) => void,
    onList: (items: readonly { status?: unknown }[]) => void,
  ): NodeMaintenanceInformer {
    const path =
      ns === undefined
        ? `/apis/${GROUP}/${VERSION}/${PLURAL}`
        : `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${PLURAL}`;
    const list = async () => {
      const res = (await (ns === undefined
        ? this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL })
        : this.custom.listNamespacedCustomObject({
            group: GROUP,
            version: VERSION,
            plural: PLURAL,
            namespace: ns,
          }))) as { items: KubernetesObject[]; metadata: { resourceVersion?: string } };
      this.lastSync = Date.now();
      onList(res.items as readonly { status?: unknown }[]);
      return { ...res, kind: 'NodeMaintenanceList', apiVersion: `${GROUP}/${VERSION}` } as never;
    };
    const informer = makeInformer(this.opts.kc, path, list);
    informer.on('add', onObject);
    informer.on('update', onObject);
    informer.on('connect', () => {
      this.watching = true;
      this.lastSync = Date.now();
    });
    informer.on('error', (err: unknown) => {
      this.watching = false;
      if (this.stopped) return;
      // Watch dropped or 410 Gone: list again and go on watching.
      this.opts.log.warn({ err, namespace: ns }, 'NodeMaintenance watch failed; restarting');
      setTimeout(() => {
        if (!this.stopped) void informer.start().catch(() => undefined);
      }, 1_000).unref();
    });
    return informer;
  }

  /** Fixes the epoch status writes carry, once: the Lease's, or above any written one. */
  private fixFence(epochs: readonly number[]): void {
    if (this.fence !== undefined || this.opts.fence === undefined) return;
    const epoch = Math.max(this.opts.fence.epoch, ...epochs);
    if (epoch !== this.opts.fence.epoch) {
      this.opts.log.warn(
        { leaseEpoch: this.opts.fence.epoch, epoch },
        'status carries a newer leader epoch than the Lease (was the Lease recreated?)',
      );
    }
    this.fence = { epoch, signal: this.opts.fence.signal };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.resync) clearInterval(this.resync);
    this.ready.resolve(); // runs waiting for it see their abort
    await Promise.all(this.informers.map((informer) => informer.stop()));
    await this.nodeCache?.stop();
    await Promise.all([...this.runs.values()].map((r) => r.stop()));
  }

  /** Reconciles of one object run one after the other, never interleaved at an await. */
  private reconcileLogged(obj: KubernetesObject): void {
    const key = obj.metadata?.uid ?? `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
    const previous = this.queues.get(key) ?? Promise.resolve();
    const next = previous
      .then(() => this.reconcile(obj))
      .catch((err: unknown) => {
        // A conflict means a newer version is on its way; the informer brings it back here.
        const level = isConflict(err) ? 'debug' : 'error';
        this.opts.log[level](
          { err, maintenance: obj.metadata?.name },
          'reconcile failed; will retry',
        );
      });
    this.queues.set(key, next);
    void next.then(() => {
      if (this.queues.get(key) === next) this.queues.delete(key);
    });
  }

  private async reconcile(obj: KubernetesObject): Promise<void> {
    if (this.stopped) return;
    const parsed = validateNodeMaintenance(obj);
    const key = `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
    if (!parsed.ok) {
      // The CRD rejects such objects; one can only come from an older CRD. Say so, touch nothing.
      this.opts.log.error(
        { maintenance: key, errors: parsed.errors },
        'invalid NodeMaintenance ignored',
      );
      return;
    }
    const cr = parsed.value;
    const existing = this.runs.get(cr.metadata.uid ?? key);
    if (cr.metadata.deletionTimestamp !== undefined) {
      // A run that never started in this process (deleted across a restart) restores from status.
      const run = existing ?? this.createRun(cr);
      if (run !== undefined) await this.finalize(cr, run);
      return;
    }
    if (existing !== undefined) {
      existing.update(cr);
      return;
    }
    if (!(cr.metadata.finalizers ?? []).includes(FINALIZER)) {
      // Before the first side effect, so a deletion always goes through finalize().
      await this.patchFinalizers(cr, (f) => (f.includes(FINALIZER) ? f : [...f, FINALIZER]));
    }
    const run = this.createRun(cr);
    void run?.start().then(async () => {
      this.fleet.notifyChanged();
      // Finished here or before a restart: pods whose result is recorded but that a
      // coordinator killed in between did not delete go now.
      const phase = run.status.phase;
      if ((phase === 'Completed' || phase === 'Failed') && cr.spec.actions.some(runsAsPod)) {
        await this.opts.dispatcher.forget?.(cr.metadata.uid ?? '');
      }
    });
  }

  private createRun(cr: NodeMaintenance): MaintenanceRun | undefined {
    const key = `${cr.metadata.namespace ?? ''}/${cr.metadata.name ?? ''}`;
    const log = this.opts.log.child({ maintenance: key });
    const status = validate(StatusSchema, cr.status ?? {}, 'status');
    if (!status.ok) {
      log.error(`status unreadable, not acting: ${formatErrors(status.errors)}`);
      return undefined;
    }
    let latest = cr;
    const custom = this.opts.statusWriter;
    const store = createStatusStore({
      initial: status.value,
      cr: () => latest,
      write: (custom ?? ((c) => kubeStatusWriter(this.opts.kc, c)))(cr),
      ...(custom === undefined ? { read: kubeStatusReader(this.opts.kc, cr) } : {}),
      ...(this.fence === undefined ? {} : { fence: this.fence }),
      ...(this.opts.onDeposed === undefined ? {} : { onDeposed: this.opts.onDeposed }),
      log,
      now: () => new Date(),
      intervalMs: this.opts.statusIntervalMs ?? 1_000,
    });
    const ref = { namespace: cr.metadata.namespace ?? '', name: cr.metadata.name ?? '' };
    const run = new MaintenanceRun(cr, {
      log: this.opts.log,
      nodes: this.opts.nodes,
      listNodes: async (selector) => (await this.core.listNode({ labelSelector: selector })).items,
      nodeFacts: (name) => this.nodeCache?.get(name),
      claimIsStale: (claim) => this.claimIsStale(claim),
      clearRequests: (done) => this.clearRequests(ref, done),
      ready: () => this.ready.promise,
      drain: this.opts.drain,
      dispatcher: this.opts.dispatcher,
      notifier: this.opts.notifier,
      events: this.opts.events,
      fleet: this.fleet,
      store,
      now: () => new Date(),
      globalLimit: this.opts.globalLimit,
      maxSelectedNodes: this.opts.maxSelectedNodes,
      agentRetryMs: this.opts.agentRetryMs ?? 5_000,
      ...(this.opts.skipPod ? { skipPod: this.opts.skipPod } : {}),
      ...(this.opts.stuckAfterMs === undefined ? {} : { stuckAfterMs: this.opts.stuckAfterMs }),
      ...(this.opts.observePhase ? { observePhase: this.opts.observePhase } : {}),
      onUpdate: (next) => {
        latest = next;
      },
    });
    this.runs.set(cr.metadata.uid ?? key, run);
    return run;
  }

  private async finalize(cr: NodeMaintenance, run: MaintenanceRun): Promise<void> {
    const uid = cr.metadata.uid ?? '';
    if (!(cr.metadata.finalizers ?? []).includes(FINALIZER)) return;
    try {
      await run.cancel();
      // A deletion seen only after a restart has no step in flight to stop its pod.
      if (cr.spec.actions.some(runsAsPod)) await this.opts.dispatcher.forget?.(uid);
      await this.patchFinalizers(cr, (f) => f.filter((x) => x !== FINALIZER));
      this.runs.delete(uid);
      this.fleet.notifyChanged();
    } catch (err) {
      if (isNotFound(err)) {
        // Gone already: someone removed the finalizer, or our removal landed before a retry.
        this.runs.delete(uid);
        return;
      }
      this.opts.log.error({ err, maintenance: cr.metadata.name }, 'finalizing failed; will retry');
    }
  }

  /**
   * A claim whose maintenance no longer exists (deleted while no coordinator ran its finalizer,
   * or recreated under the same name) holds nothing. Any doubt (an error) keeps it valid.
   */
  private async claimIsStale(claim: Claim): Promise<boolean> {
    for (const run of this.runs.values()) if (run.uid === claim.uid) return false;
    const [namespace, name] = claim.maintenance.split('/');
    if (namespace === undefined || name === undefined) return false;
    try {
      const obj = (await this.custom.getNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
        namespace,
        name,
      })) as KubernetesObject;
      return obj.metadata?.uid !== claim.uid;
    } catch (err) {
      return isNotFound(err);
    }
  }

  /**
   * Removes the entries a run decided on from its restore/retry annotations, on the latest
   * version and guarded by its resourceVersion: an entry someone adds meanwhile stays.
   */
  private async clearRequests(
    ref: { namespace: string; name: string },
    done: { restore: string[]; retry: string[] },
  ): Promise<void> {
    const api = { group: GROUP, version: VERSION, plural: PLURAL, ...ref };
    await retryOnConflict(
      async () => {
        const latest = (await this.custom.getNamespacedCustomObject(api)) as NodeMaintenance;
        const annotations = latest.metadata.annotations ?? {};
        const next = (key: string, drop: readonly string[]) =>
          formatNodeList(parseNodeList(annotations[key]).filter((e) => !drop.includes(e))) ?? null;
        const restore = next(RESTORE_ANNOTATION, done.restore);
        const retry = next(RETRY_ANNOTATION, done.retry);
        if (
          restore === (annotations[RESTORE_ANNOTATION] ?? null) &&
          retry === (annotations[RETRY_ANNOTATION] ?? null)
        ) {
          return;
        }
        await this.custom.patchNamespacedCustomObject(
          {
            ...api,
            body: {
              metadata: {
                resourceVersion: latest.metadata.resourceVersion,
                annotations: { [RESTORE_ANNOTATION]: restore, [RETRY_ANNOTATION]: retry },
              },
            },
          },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        );
      },
      { attempts: 6 },
    );
  }

  /** Read-modify-write of metadata.finalizers on the latest version, redone on conflict. */
  private async patchFinalizers(
    cr: NodeMaintenance,
    change: (finalizers: string[]) => string[],
  ): Promise<void> {
    const ref = {
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      namespace: cr.metadata.namespace ?? '',
      name: cr.metadata.name ?? '',
    };
    await retryOnConflict(
      async () => {
        const latest = (await this.custom.getNamespacedCustomObject(ref)) as NodeMaintenance;
        const current = latest.metadata.finalizers ?? [];
        const next = change(current);
        if (next.length === current.length && next.every((f, i) => f === current[i])) return;
        await this.custom.patchNamespacedCustomObject(
          {
            ...ref,
            body: {
              metadata: { finalizers: next, resourceVersion: latest.metadata.resourceVersion },
            },
          },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        );
      },
      { attempts: 6 },
    );
  }
}
