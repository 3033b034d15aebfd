// Runs Script/Run with an `image` and InteractiveShell as a pod pinned to the node (pod-job.ts
// builds it), in the coordinator's namespace. At most once: the job is in status before the pod
// is created, its name follows from the action ID, and a restarted coordinator attaches to the
// pod it finds, or reads the result of a finished one, and never creates a pod for a step whose
// job was recorded. The pod is deleted once the run has recorded its result.
import { CoreV1Api, makeInformer, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { describeApiError, isConflict, isNotFound } from '../../shared/kube-errors.js';
import type { Logger } from '../../shared/log.js';
import { retry } from '../../shared/retry.js';
import { setLongTimeout } from '../../shared/timers.js';
import {
  DEFAULT_CANCEL_CONFIRM_MS,
  type ActionDispatcher,
  type NodeActionOutcome,
  type NodeActionRequest,
} from './dispatcher.js';
import {
  ACTION_ID_ANNOTATION,
  MAINTENANCE_UID_LABEL,
  POD_SELECTOR,
  RELEASE_ANNOTATION,
  containerOf,
  execCommand,
  isReleased,
  LOG_LIMIT_BYTES,
  LOG_TAIL_LINES,
  podActionTimeoutMs,
  podManifest,
  podName,
  podOutcome,
  podView,
  releaseCommand,
  type LogRead,
} from './pod-job.js';

export interface PodActionRunnerDeps {
  readonly kc: KubeConfig;
  readonly log: Logger;
  /** The coordinator's namespace: the pods live there. */
  readonly namespace: string;
  /** A job's pod is read at least this often, watch events or not (default 30 s). */
  readonly resyncMs?: number;
  /** pods/log goes through the API server to the kubelet; give up after this (default 10 s). */
  readonly logTimeoutMs?: number;
  /** A request's cancelConfirmMs when it has none (default DEFAULT_CANCEL_CONFIRM_MS). */
  readonly cancelConfirmMs?: number;
}

/** The API server's own words for a refusal, bounded for status. */
function describe(err: unknown): string {
  const text = describeApiError(err);
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

/** During a cancel the pod is read this often, watch events or not. */
const CANCEL_POLL_MS = 1_000;

const humanMs = (ms: number): string =>
  ms % 3_600_000 === 0
    ? `${ms / 3_600_000}h`
    : ms % 60_000 === 0
      ? `${ms / 60_000}m`
      : `${Math.round(ms / 1000)}s`;

export class PodActionRunner implements ActionDispatcher {
  private readonly core: CoreV1Api;
  /** Wakes the waits on a pod when the watch sees it change. */
  private readonly waiters = new Map<string, Set<() => void>>();
  private watching = false;
  private restart: NodeJS.Timeout | undefined;
  private detached = false;
  /** Cancels waiting for their pod to go: detach() ends them. */
  private readonly cancelling = new Set<AbortController>();

  constructor(private readonly deps: PodActionRunnerDeps) {
    this.core = deps.kc.makeApiClient(CoreV1Api);
  }

  /** Shutting down: aborts from now on leave the pods running for the next coordinator. */
  detach(): void {
    this.detached = true;
    if (this.restart !== undefined) clearTimeout(this.restart);
    for (const c of this.cancelling) c.abort();
  }

  async run(req: NodeActionRequest): Promise<NodeActionOutcome> {
    const { namespace } = this.deps;
    const name = podName(req.actionId, req.node, req.index);
    const timeoutMs = podActionTimeoutMs(req.action);
    const manifest = podManifest({
      name,
      namespace,
      node: req.node,
      index: req.index,
      actionId: req.actionId,
      action: req.action,
      maintenance: req.maintenance,
      timeoutMs,
    });
    if (!manifest.ok) return { kind: 'failed', message: manifest.why };
    this.watch();
    // A cancel of a step no run() here follows: its pod may exist (an earlier leader's).
    if (req.signal.aborted) return this.aborted(req, name);
    const shell = req.action.type === 'InteractiveShell';
    const recorded = req.job?.pod === name ? req.job : undefined;
    const timeoutAt = recorded?.timeoutAt ?? new Date(Date.now() + timeoutMs).toISOString();
    const tty = req.action.interactiveShell?.tty === true;
    const job = {
      pod: name,
      namespace,
      timeoutAt,
      ...(shell
        ? {
            execCommand: execCommand(namespace, name, tty),
            releaseCommand: releaseCommand(req.maintenance, req.node, req.index),
          }
        : {}),
    };

    let pod: V1Pod | undefined;
    if (recorded !== undefined) {
      // A coordinator before this one recorded the job: attach to its pod, never make another.
      try {
        pod = await this.read(name);
      } catch (err) {
        return this.unavailable(`cannot read pod ${namespace}/${name}: ${describe(err)}`);
      }
      if (pod === undefined) return this.gone(name, shell);
      await req.report({ job });
    } else {
      // Status first: with the job recorded, a coordinator that dies from here on never
      // creates the pod a second time.
      await req.report({ job });
      const created = await this.create(req, manifest.pod, Date.parse(timeoutAt));
      if (created.kind !== 'pod') return created.outcome;
      pod = created.pod;
    }
    if (pod.metadata?.annotations?.[ACTION_ID_ANNOTATION] !== req.actionId) {
      return {
        kind: 'failed',
        message: `pod ${namespace}/${name} exists but was not made for action ${req.actionId}`,
      };
    }
    return this.follow(req, pod, Date.parse(timeoutAt), timeoutMs, job);
  }

  /** Creates the pod; an existing one (a create that raced, or one made before) is attached. */
  private async create(
    req: NodeActionRequest,
    manifest: V1Pod,
    deadline: number,
  ): Promise<{ kind: 'pod'; pod: V1Pod } | { kind: 'outcome'; outcome: NodeActionOutcome }> {
    const { namespace, log } = this.deps;
    const name = manifest.metadata?.name ?? '';
    const timeout = AbortSignal.timeout(Math.max(0, deadline - Date.now()));
    let why = `pod ${namespace}/${name} was not created in time`;
    try {
      // Within this call a failed create is known not to have run anything; across a restart
      // it is not, so retry here rather than hand back a step with a recorded job.
      const pod = await retry(
        async () => {
          try {
            return await this.core.createNamespacedPod({ namespace, body: manifest });
          } catch (err) {
            const existing = isConflict(err)
              ? await this.read(name).catch(() => undefined)
              : undefined;
            if (existing !== undefined) return existing;
            why = `cannot create pod ${namespace}/${name}: ${describe(err)}`;
            throw err;
          }
        },
        {
          baseMs: 1_000,
          maxMs: 30_000,
          signal: AbortSignal.any([req.signal, timeout]),
          onRetry: (err, attempt) => {
            log.warn({ err, pod: name, attempt }, 'creating the action pod failed; retrying');
            // Progress only: a write that fails is written again at the next retry.
            req.report({ message: why }).catch(() => undefined);
          },
        },
      );
      log.info({ pod: name, node: req.node, id: req.actionId }, 'action pod created');
      return { kind: 'pod', pod };
    } catch (err) {
      if (req.signal.aborted) return { kind: 'outcome', outcome: await this.aborted(req, name) };
      if (timeout.aborted) {
        return { kind: 'outcome', outcome: { kind: 'failed', message: `TimedOut: ${why}` } };
      }
      // A refusal retrying does not change (RBAC, an invalid pod).
      log.warn({ err, pod: name }, 'the action pod cannot be created');
      return { kind: 'outcome', outcome: { kind: 'failed', message: why } };
    }
  }

  private async follow(
    req: NodeActionRequest,
    first: V1Pod,
    deadline: number,
    timeoutMs: number,
    job: { execCommand?: string; releaseCommand?: string },
  ): Promise<NodeActionOutcome> {
    const name = first.metadata?.name ?? '';
    const container = containerOf(req.action);
    const shell = req.action.type === 'InteractiveShell';
    let pod: V1Pod | undefined = first;
    let said: string | undefined;
    const say = async (message: string) => {
      if (message === said) return;
      said = message;
      await req.report({ message });
    };
    for (;;) {
      if (req.signal.aborted) return this.aborted(req, name);
      // A human deleting the shell's pod ends the step; the kubelet's grace period is not ours.
      if (pod === undefined || (shell && pod.metadata?.deletionTimestamp !== undefined)) {
        return this.gone(name, shell);
      }
      const view = podView(pod, container);
      if (view.state === 'finished') {
        const cleanup = { afterRecorded: () => this.remove(name) };
        if (shell) {
          return {
            kind: 'succeeded',
            message: `shell exited${view.exitCode === undefined ? '' : ` with code ${view.exitCode}`}`,
            ...(view.exitCode === undefined ? {} : { exitCode: view.exitCode }),
            ...cleanup,
          };
        }
        return { ...podOutcome(name, view, await this.readLog(name, container)), ...cleanup };
      }
      if (shell && isReleased(req.annotations(), req.node, req.index)) {
        return {
          kind: 'succeeded',
          message: `released (annotation ${RELEASE_ANNOTATION})`,
          afterRecorded: () => this.remove(name),
        };
      }
      if (Date.now() >= deadline) return this.timedOut(name, container, shell, timeoutMs);
      if (view.state === 'pending') {
        if (view.permanent) {
          await this.remove(name);
          return { kind: 'failed', message: `Failed: ${view.detail}` };
        }
        await say(view.detail);
      } else {
        await say(
          shell
            ? `shell open: ${job.execCommand ?? ''}; release: ${job.releaseCommand ?? ''}`
            : `pod ${name} running`,
        );
      }
      await this.wake(
        name,
        Math.min(deadline - Date.now(), this.deps.resyncMs ?? 30_000),
        req.signal,
        shell ? (signal) => req.maintenanceChanged(signal) : undefined,
      );
      try {
        pod = await this.read(name);
      } catch (err) {
        // The API server away: keep the last view and look again at the next wake-up.
        this.deps.log.warn({ err, pod: name }, 'reading the action pod failed');
      }
    }
  }

  /** The pod is gone and no result of it was seen. */
  private gone(name: string, shell: boolean): NodeActionOutcome {
    if (shell) return { kind: 'succeeded', message: `shell pod ${name} deleted` };
    return {
      kind: 'failed',
      message: `Interrupted: pod ${this.deps.namespace}/${name} is gone and its result was not recorded; not run again`,
    };
  }

  private async timedOut(
    name: string,
    container: string,
    shell: boolean,
    timeoutMs: number,
  ): Promise<NodeActionOutcome> {
    if (shell) {
      await this.remove(name);
      return {
        kind: 'failed',
        message: `TimedOut: the shell was not released within ${humanMs(timeoutMs)}; pod ${name} deleted`,
      };
    }
    const log = await this.readLog(name, container);
    await this.remove(name);
    return {
      kind: 'failed',
      message: `TimedOut: pod ${name} did not finish within ${humanMs(timeoutMs)}; deleted`,
      ...(log.ok && log.text !== '' ? { outputTail: log.text } : {}),
    };
  }

  /** Shutdown: the pod keeps running for the next leader. Deleted maintenance: it goes. */
  private aborted(req: NodeActionRequest, name: string): Promise<NodeActionOutcome> {
    if (this.detached) return Promise.resolve({ kind: 'unavailable', message: 'stopped' });
    return this.cancel(req, name);
  }

  /**
   * Deletes the step's pod and waits until it is gone (not merely terminating: its containers
   * run through their grace period) or had terminated, for at most cancelConfirmMs.
   */
  private async cancel(req: NodeActionRequest, name: string): Promise<NodeActionOutcome> {
    const ms = req.cancelConfirmMs ?? this.deps.cancelConfirmMs ?? DEFAULT_CANCEL_CONFIRM_MS;
    const deadline = Date.now() + ms;
    const stop = new AbortController();
    this.cancelling.add(stop);
    const pod = `${this.deps.namespace}/${name}`;
    let why = `pod ${pod} not read yet`;
    let deleted = false;
    try {
      for (;;) {
        if (this.detached) return { kind: 'unavailable', message: 'stopped' };
        const left = deadline - Date.now();
        if (left <= 0) {
          return {
            kind: 'cancelled',
            confirmed: false,
            message: `cancel not confirmed within ${Math.round(ms / 1000)} s: ${why}`,
          };
        }
        const seen = await this.cancelLook(name, containerOf(req.action), deleted, left);
        if (seen.kind === 'confirmed') {
          this.deps.log.info({ pod: name, id: req.actionId, why: seen.why }, 'cancel confirmed');
          return { kind: 'cancelled', confirmed: true, message: `pod ${pod} ${seen.why}` };
        }
        deleted ||= seen.deleted;
        why = seen.why;
        await this.wake(name, Math.min(deadline - Date.now(), CANCEL_POLL_MS), stop.signal);
      }
    } finally {
      this.cancelling.delete(stop);
    }
  }

  /** One look at a cancelled step's pod: gone or terminated, or delete it (once) and say why not. */
  private async cancelLook(
    name: string,
    container: string,
    deleted: boolean,
    ms: number,
  ): Promise<
    { kind: 'confirmed'; why: string } | { kind: 'waiting'; why: string; deleted: boolean }
  > {
    const pod = `pod ${this.deps.namespace}/${name}`;
    const read = await within(this.read(name), ms).catch((err: unknown) => ({
      err: describe(err),
    }));
    if (read === 'late') return { kind: 'waiting', why: `${pod} not read in time`, deleted };
    if ('err' in read) return { kind: 'waiting', why: `cannot read ${pod}: ${read.err}`, deleted };
    const p = read.value;
    if (p === undefined) return { kind: 'confirmed', why: 'is gone' };
    const view = podView(p, container);
    if (view.state === 'finished') {
      void this.remove(name);
      return { kind: 'confirmed', why: 'had terminated' };
    }
    if (p.metadata?.deletionTimestamp !== undefined) {
      return {
        kind: 'waiting',
        why: `${pod} is still terminating (its grace period)`,
        deleted: true,
      };
    }
    if (deleted) return { kind: 'waiting', why: `${pod} not deleted yet`, deleted };
    const removed = await within(this.remove(name, true), ms).catch((err: unknown) => ({
      err: describe(err),
    }));
    if (removed !== 'late' && 'err' in removed) {
      return { kind: 'waiting', why: `cannot delete ${pod}: ${removed.err}`, deleted: false };
    }
    return { kind: 'waiting', why: `${pod} deleted, still there`, deleted: removed !== 'late' };
  }

  private unavailable(message: string): NodeActionOutcome {
    return { kind: 'unavailable', message, reason: 'ActionPodUnreachable' };
  }

  /** The pod, or undefined once it is gone (404). */
  private async read(name: string): Promise<V1Pod | undefined> {
    try {
      return await this.core.readNamespacedPod({ name, namespace: this.deps.namespace });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** Deletes the pod (gone already is fine); `raise`: a failure is thrown, else logged. */
  private async remove(name: string, raise = false): Promise<void> {
    try {
      await this.core.deleteNamespacedPod({ name, namespace: this.deps.namespace });
      this.deps.log.info({ pod: name }, 'action pod deleted');
    } catch (err) {
      if (isNotFound(err)) return;
      if (raise) throw err;
      // forget() sweeps it when the maintenance ends.
      this.deps.log.warn({ err, pod: name }, 'deleting the action pod failed');
    }
  }

  /**
   * The end of the container's log through pods/log, which the API server fetches from the
   * node's kubelet: best effort, bounded in size and time.
   */
  private async readLog(name: string, container: string): Promise<LogRead> {
    const ms = this.deps.logTimeoutMs ?? 10_000;
    const request = this.core.readNamespacedPodLog({
      name,
      namespace: this.deps.namespace,
      container,
      tailLines: LOG_TAIL_LINES,
      limitBytes: LOG_LIMIT_BYTES,
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new Error(`no answer within ${Math.round(ms / 1000)} s`));
      }, ms);
    });
    request.catch(() => undefined);
    try {
      const text: unknown = await Promise.race([request, timeout]);
      return typeof text === 'string'
        ? { ok: true, text }
        : { ok: false, why: 'pods/log did not answer with text' };
    } catch (err) {
      return { ok: false, why: describe(err) };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Resolves on a watch event for the pod, `also`, the signal, or after `ms`. */
  private wake(
    pod: string,
    ms: number,
    signal: AbortSignal,
    also?: (signal: AbortSignal) => Promise<void>,
  ): Promise<void> {
    return new Promise((resolve) => {
      const stopAlso = new AbortController();
      let set = this.waiters.get(pod);
      if (set === undefined) {
        set = new Set();
        this.waiters.set(pod, set);
      }
      const waiters = set;
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        timer.clear();
        waiters.delete(finish);
        if (waiters.size === 0 && this.waiters.get(pod) === waiters) this.waiters.delete(pod);
        signal.removeEventListener('abort', finish);
        stopAlso.abort();
        resolve();
      };
      // Capped by the resync interval today, but `ms` derives from the step's timeout (up to
      // 720h), which Node's setTimeout cannot wait for.
      const timer = setLongTimeout(finish, Math.max(0, ms));
      waiters.add(finish);
      signal.addEventListener('abort', finish, { once: true });
      if (signal.aborted) finish();
      void also?.(stopAlso.signal).then(finish);
    });
  }

  /** One watch on every action pod of this namespace, started with the first job. */
  private watch(): void {
    if (this.watching) return;
    this.watching = true;
    const { kc, namespace, log } = this.deps;
    const informer = makeInformer<V1Pod>(
      kc,
      `/api/v1/namespaces/${namespace}/pods`,
      () => this.core.listNamespacedPod({ namespace, labelSelector: POD_SELECTOR }),
      POD_SELECTOR,
    );
    const poke = (p: V1Pod) => {
      for (const wake of [...(this.waiters.get(p.metadata?.name ?? '') ?? [])]) wake();
    };
    informer.on('add', poke);
    informer.on('update', poke);
    informer.on('delete', poke);
    const again = (err: unknown) => {
      if (this.detached || this.restart !== undefined) return;
      // Until it is back the jobs still read their pods every resync interval.
      log.warn({ err }, 'action pod watch failed; restarting');
      this.restart = setTimeout(() => {
        this.restart = undefined;
        informer.start().catch(again);
      }, 5_000);
      this.restart.unref();
    };
    informer.on('error', again);
    informer.start().catch(again);
  }

  /** Deletes every pod left of a maintenance (not while shutting down: those are in flight). */
  async forget(maintenanceUid: string): Promise<void> {
    if (this.detached) return;
    const { namespace, log } = this.deps;
    try {
      const pods = await this.core.listNamespacedPod({
        namespace,
        labelSelector: `${POD_SELECTOR},${MAINTENANCE_UID_LABEL}=${maintenanceUid}`,
      });
      for (const p of pods.items) {
        const name = p.metadata?.name;
        if (name !== undefined && p.metadata?.deletionTimestamp === undefined) {
          await this.remove(name);
        }
      }
    } catch (err) {
      log.warn({ err, maintenanceUid }, 'cleaning up action pods failed');
    }
  }
}

/** `p`'s value, or 'late' once `ms` passed (the call goes on; what it brings is dropped). */
async function within<T>(p: Promise<T>, ms: number): Promise<{ value: T } | 'late'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(
      () => {
        resolve('late');
      },
      Math.max(0, ms),
    );
  });
  try {
    return await Promise.race([p.then((value) => ({ value })), late]);
  } finally {
    clearTimeout(timer);
  }
}
