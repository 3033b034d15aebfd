// Runs Script/Run with an `image` and InteractiveShell as a pod pinned to the node (pod-job.ts
// builds it), in the coordinator's namespace. At most once: the job is in status before the pod
// is created, its name follows from the action ID, and a restarted coordinator attaches to the
// pod it finds, or reads the result of a finished one, and never creates a pod for a step whose
// job was recorded. The pod is deleted once the run has recorded its result.
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, makeInformer, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { backoffMs } from '../../shared/duration.js';
import type { Logger } from '../../shared/log.js';
import { setLongTimeout } from '../../shared/timers.js';
import type { ActionDispatcher, NodeActionOutcome, NodeActionRequest } from './dispatcher.js';
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
}

const statusCode = (err: unknown): number | undefined => {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'number' ? code : undefined;
};

/** The API server's own words for a refusal (its Status message), else the error's. */
function describe(err: unknown): string {
  let body: unknown = (err as { body?: unknown }).body;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body);
    } catch {
      // not JSON: the text is the message
    }
  }
  const text =
    typeof body === 'object' &&
    body !== null &&
    typeof (body as { message?: unknown }).message === 'string'
      ? (body as { message: string }).message
      : typeof body === 'string' && body !== ''
        ? body
        : err instanceof Error
          ? err.message
          : String(err);
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

/** A refusal that retrying does not change (RBAC, an invalid pod). */
const permanent = (err: unknown): boolean => {
  const code = statusCode(err);
  return code !== undefined && code >= 400 && code < 500 && code !== 409 && code !== 429;
};

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

  constructor(private readonly deps: PodActionRunnerDeps) {
    this.core = deps.kc.makeApiClient(CoreV1Api);
  }

  /** Shutting down: aborts from now on leave the pods running for the next coordinator. */
  detach(): void {
    this.detached = true;
    if (this.restart !== undefined) clearTimeout(this.restart);
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
    let why = `pod ${namespace}/${name} was not created in time`;
    for (let attempt = 0; ; attempt++) {
      if (req.signal.aborted) return { kind: 'outcome', outcome: this.stopped(name) };
      if (Date.now() >= deadline) {
        return { kind: 'outcome', outcome: { kind: 'failed', message: `TimedOut: ${why}` } };
      }
      try {
        const pod = await this.core.createNamespacedPod({ namespace, body: manifest });
        log.info({ pod: name, node: req.node, id: req.actionId }, 'action pod created');
        return { kind: 'pod', pod };
      } catch (err) {
        if (statusCode(err) === 409) {
          const existing = await this.read(name).catch(() => undefined);
          if (existing !== undefined) return { kind: 'pod', pod: existing };
          continue;
        }
        why = `cannot create pod ${namespace}/${name}: ${describe(err)}`;
        if (permanent(err)) return { kind: 'outcome', outcome: { kind: 'failed', message: why } };
        // Within this call a failed create is known not to have run anything; across a
        // restart it is not, so retry here rather than hand back a step with a recorded job.
        log.warn({ err, pod: name, attempt }, 'creating the action pod failed; retrying');
        await req.report({ message: why });
        await sleep(backoffMs(attempt, { baseMs: 1_000, maxMs: 30_000 }), undefined, {
          signal: req.signal,
        }).catch(() => undefined);
      }
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
      if (req.signal.aborted) return this.stopped(name);
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

  /** Deleted maintenance: the pod goes. Shutdown: it keeps running for the next leader. */
  private stopped(name: string): NodeActionOutcome {
    if (!this.detached) void this.remove(name);
    return { kind: 'unavailable', message: 'stopped' };
  }

  private unavailable(message: string): NodeActionOutcome {
    return { kind: 'unavailable', message, reason: 'ActionPodUnreachable' };
  }

  /** The pod, or undefined once it is gone (404). */
  private async read(name: string): Promise<V1Pod | undefined> {
    try {
      return await this.core.readNamespacedPod({ name, namespace: this.deps.namespace });
    } catch (err) {
      if (statusCode(err) === 404) return undefined;
      throw err;
    }
  }

  private async remove(name: string): Promise<void> {
    try {
      await this.core.deleteNamespacedPod({ name, namespace: this.deps.namespace });
      this.deps.log.info({ pod: name }, 'action pod deleted');
    } catch (err) {
      if (statusCode(err) === 404) return;
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
