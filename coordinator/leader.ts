// Leader election on a coordination.k8s.io Lease, fenced the way client-go's leaderelection is,
// so that two replicas never act at once:
// - every read/write of the Lease is bounded: a request that hangs (a black-holed connection)
//   is aborted at the renew deadline, never awaited;
// - a leader stops at the renew deadline, measured on its own monotonic clock from the start
//   of its last successful renewal, and the moment it sees another holder in the Lease;
// - a standby takes the Lease only after it has watched the record stay unchanged for a whole
//   lease duration, on its own monotonic clock. The holder's renewTime is never compared with
//   our clock: a skewed clock can neither depose a live leader nor let us take a lease early.
// Why that is safe: the leader stops at renewStart + renewDeadline; the standby's clock starts
// when it sees that renewal, which is after renewStart, and it waits leaseDuration >
// renewDeadline (clocks may differ in offset, not much in rate). A takeover is a replace with
// the resourceVersion the standby watched, so a renewal it did not see makes it fail (409).
// What the old leader sent before it stopped may still land later: the epoch (the Lease's
// leaseTransitions) is the fencing token that lets the API server refuse such writes.
import {
  CoordinationV1Api,
  Observable,
  V1MicroTime,
  type ConfigurationOptions,
  type KubeConfig,
  type RequestContext,
  type ResponseContext,
  type V1Lease,
  type V1ObjectMeta,
} from '@kubernetes/client-node';
import { describeApiError, isConflict, isNotFound, isTransient } from '../shared/kube-errors.js';
import type { Logger } from '../shared/log.js';

/** The part of a Lease that election reads and writes. */
export interface LeaseRecord {
  /** '' when nobody holds it (released). */
  readonly holderIdentity: string;
  readonly leaseDurationSeconds: number | undefined;
  /** Holder changes so far: the epoch of whoever holds it. */
  readonly leaseTransitions: number;
  /** Wall-clock times, for people reading the Lease; election never compares them to a clock. */
  readonly acquireTime: Date | undefined;
  readonly renewTime: Date | undefined;
  /** What makes a replace conditional: it fails with 409 when the Lease changed since. */
  readonly resourceVersion: string | undefined;
}

/** The Lease as election sees it. Every call takes a signal and must give up when it aborts. */
export interface LeasePort {
  /** The Lease, or undefined when it does not exist. */
  read(signal: AbortSignal): Promise<LeaseRecord | undefined>;
  /** Creates the Lease; an error with code 409 when it exists already. */
  create(record: LeaseRecord, signal: AbortSignal): Promise<LeaseRecord>;
  /** Replaces the Lease if its resourceVersion is still record's; else an error with code 409. */
  replace(record: LeaseRecord, signal: AbortSignal): Promise<LeaseRecord>;
}

export interface Clock {
  /** Monotonic milliseconds: all of election's decisions are made on this clock. */
  now(): number;
  /** Wall-clock time, only written into the Lease for people to read. */
  wall(): Date;
  /** Calls fn after ms; returns what cancels it. */
  setTimer(fn: () => void, ms: number): () => void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  wall: () => new Date(),
  setTimer: (fn, ms) => {
    const t = setTimeout(fn, ms);
    return () => {
      clearTimeout(t);
    };
  },
};

interface LeaderTimings {
  readonly log: Logger;
  readonly namespace: string;
  readonly name: string;
  readonly identity: string;
  /** How long a standby waits, after it last saw the Lease change, before it takes it. */
  readonly leaseDurationMs: number;
  /** How long the leader goes on without a successful renewal; below leaseDurationMs. */
  readonly renewDeadlineMs: number;
  /** Pause between attempts, as standby and as leader; below renewDeadlineMs. */
  readonly retryPeriodMs: number;
  readonly clock?: Clock;
}

/** The real Lease through `kc`, or any LeasePort (tests). */
export type LeaderOptions = LeaderTimings &
  ({ readonly kc: KubeConfig; readonly lease?: undefined } | { readonly lease: LeasePort });

/** Pure: what to do with the Lease just read. */
export type Verdict = 'renew' | 'take' | 'wait' | 'lost';

export function judge(o: {
  readonly holder: string;
  readonly identity: string;
  readonly leading: boolean;
  /** Local time since this process saw the record change. */
  readonly unchangedForMs: number;
  readonly leaseDurationMs: number;
}): Verdict {
  if (o.leading) return o.holder === o.identity ? 'renew' : 'lost';
  // Our own identity, not led by this process: an earlier run of this pod, which is gone (a
  // container restarts only once the old one is dead). Taken at once, as a new epoch.
  if (o.holder === '' || o.holder === o.identity) return 'take';
  return o.unchangedForMs >= o.leaseDurationMs ? 'take' : 'wait';
}

type Outcome =
  | { readonly kind: 'ok'; readonly record: LeaseRecord }
  | { readonly kind: 'not-yet' }
  | { readonly kind: 'lost'; readonly why: string };

export class LeaderElector {
  readonly #opts: LeaderTimings;
  readonly #lease: LeasePort;
  readonly #clock: Clock;
  /** Aborted when this process's term ends (lost or released). */
  readonly #term = new AbortController();
  /** Aborted when election stops: ends waits and requests in flight. */
  readonly #stop = new AbortController();
  #observed: { readonly key: string; readonly at: number } | undefined;
  #leading = false;
  #started = false;
  #renewedAt = 0;
  #epoch: number | undefined;
  #onLost: (() => void) | undefined;
  #cancelWatchdog: (() => void) | undefined;

  constructor(opts: LeaderOptions) {
    if (!(
      opts.retryPeriodMs < opts.renewDeadlineMs && opts.renewDeadlineMs < opts.leaseDurationMs
    )) {
      // The safety argument at the top rests on these.
      throw new Error('leader election needs retryPeriod < renewDeadline < leaseDuration');
    }
    this.#opts = opts;
    this.#clock = opts.clock ?? systemClock;
    this.#lease =
      opts.lease !== undefined ? opts.lease : kubeLeasePort(opts.kc, opts.namespace, opts.name);
  }

  /**
   * Whether this process leads now. Read past the renew deadline it ends leadership there and
   * then: after a pause (SIGSTOP, a blocked event loop) I/O can run before the deadline's timer.
   */
  get isLeader(): boolean {
    if (this.#leading && !this.#withinTerm()) this.#lose('the renew deadline passed');
    return this.#leading;
  }

  #withinTerm(): boolean {
    return this.#leading && this.#clock.now() < this.#renewedAt + this.#opts.renewDeadlineMs;
  }

  /** Aborted the instant this process's leadership ends (lost or released); never reset. */
  get signal(): AbortSignal {
    return this.#term.signal;
  }

  /** The Lease's leaseTransitions when this process took it; undefined until it leads. */
  get epoch(): number | undefined {
    return this.#epoch;
  }

  /**
   * Resolves once this process leads; onLost is called (once, right after `signal` aborts) if
   * leadership is lost later. Rejects if release() comes first. One term per elector: a
   * process that lost leadership exits and comes back as a standby.
   */
  async run(onLost: () => void): Promise<void> {
    if (this.#started) throw new Error('a LeaderElector runs once');
    this.#started = true;
    this.#onLost = onLost;
    // A fixed-period poll, as client-go's: an election is not retrying a failure, and its
    // timing is the injected clock's (shared/retry.ts sleeps on the real one).
    while (!this.#stop.signal.aborted) {
      if (await this.#attemptAcquire()) break;
      await this.#sleep(this.#opts.retryPeriodMs);
    }
    if (!this.#leading) throw new Error('leader election stopped');
    this.#opts.log.info(
      { lease: this.#opts.name, identity: this.#opts.identity, epoch: this.#epoch },
      'became leader',
    );
    void this.#renewLoop();
  }

  /**
   * Ends the term (signal aborts; onLost is not called: this is no loss) and, if this process
   * still holds the Lease, clears the holder so that a standby takes over at once.
   */
  async release(): Promise<void> {
    const wasLeading = this.#withinTerm();
    this.#end();
    this.#term.abort(new Error('leadership released'));
    if (!wasLeading) return;
    const bound = boundedSignal(this.#clock, this.#opts.renewDeadlineMs);
    try {
      await untilAborted(this.#clear(bound.signal), bound.signal);
    } catch (err) {
      this.#opts.log.warn({ err: describeApiError(err) }, 'could not release the lease');
    } finally {
      bound.cancel();
    }
  }

  async #clear(signal: AbortSignal): Promise<void> {
    const current = await this.#lease.read(signal);
    signal.throwIfAborted();
    if (current?.holderIdentity !== this.#opts.identity) return;
    const wall = this.#clock.wall();
    // Conditional on the resourceVersion read: a late renewal of ours or a new holder wins.
    await this.#lease.replace(
      { ...current, holderIdentity: '', leaseDurationSeconds: 1, renewTime: wall },
      signal,
    );
  }

  async #attemptAcquire(): Promise<boolean> {
    const started = this.#clock.now();
    const outcome = await this.#attempt(started + this.#opts.renewDeadlineMs);
    if (outcome.kind !== 'ok' || this.#stop.signal.aborted) return false;
    this.#leading = true;
    this.#epoch = outcome.record.leaseTransitions;
    this.#renewed(started);
    return true;
  }

  async #renewLoop(): Promise<void> {
    while (this.#leading) {
      await this.#sleep(this.#opts.retryPeriodMs);
      if (!this.isLeader) return;
      const started = this.#clock.now();
      // Bounded by the term's deadline, not the attempt's: the watchdog ends the term then.
      const outcome = await this.#attempt(this.#renewedAt + this.#opts.renewDeadlineMs);
      if (this.#stop.signal.aborted) return; // lost or released meanwhile
      if (outcome.kind === 'lost') this.#lose(outcome.why);
      else if (outcome.kind === 'ok') this.#renewed(started);
      // not-yet: the watchdog ends the term if no renewal succeeds before the deadline.
    }
  }

  /**
   * One read-decide-write, aborted at `deadline` (monotonic) or when election stops. Errors
   * are logged and count as not-yet: the next attempt comes after retryPeriod.
   */
  async #attempt(deadline: number): Promise<Outcome> {
    const bound = boundedSignal(this.#clock, deadline - this.#clock.now(), this.#stop.signal);
    try {
      // Raced as well as aborted: a request that ignores its signal is still not awaited.
      return await untilAborted(this.#tryAcquireOrRenew(bound.signal), bound.signal);
    } catch (err) {
      this.#logFailure(err);
      return { kind: 'not-yet' };
    } finally {
      bound.cancel();
    }
  }

  async #tryAcquireOrRenew(signal: AbortSignal): Promise<Outcome> {
    const current = await this.#lease.read(signal);
    signal.throwIfAborted();
    if (current === undefined) {
      // Deleted under a leader: whoever creates it next starts again at epoch 0.
      if (this.#leading) return { kind: 'lost', why: 'the Lease was deleted' };
      return this.#write('create', this.#next(undefined), signal);
    }
    const changedAt = this.#observe(current);
    const verdict = judge({
      holder: current.holderIdentity,
      identity: this.#opts.identity,
      leading: this.#leading,
      unchangedForMs: this.#clock.now() - changedAt,
      leaseDurationMs: (current.leaseDurationSeconds ?? 0) * 1000 || this.#opts.leaseDurationMs,
    });
    if (verdict === 'lost') return { kind: 'lost', why: `held by ${current.holderIdentity}` };
    if (verdict === 'wait') return { kind: 'not-yet' };
    return this.#write('replace', this.#next(current), signal);
  }

  async #write(
    how: 'create' | 'replace',
    record: LeaseRecord,
    signal: AbortSignal,
  ): Promise<Outcome> {
    try {
      const written = await this.#lease[how](record, signal);
      signal.throwIfAborted();
      this.#observe(written);
      return { kind: 'ok', record: written };
    } catch (err) {
      // Someone else wrote first: not ours this time (the next read shows who).
      if (!isConflict(err)) throw err;
      this.#opts.log.info({ lease: this.#opts.name }, `lease ${how} conflicted`);
      return { kind: 'not-yet' };
    }
  }

  /** The record to write: a renewal keeps the epoch, a takeover (or a new Lease) starts one. */
  #next(current: LeaseRecord | undefined): LeaseRecord {
    const wall = this.#clock.wall();
    const renewing = this.#leading && current !== undefined;
    return {
      holderIdentity: this.#opts.identity,
      leaseDurationSeconds: Math.ceil(this.#opts.leaseDurationMs / 1000),
      leaseTransitions: current === undefined ? 0 : current.leaseTransitions + (renewing ? 0 : 1),
      acquireTime: renewing ? current.acquireTime : wall,
      renewTime: wall,
      resourceVersion: current?.resourceVersion,
    };
  }

  /** Records when this process saw the record change; returns that (monotonic) time. */
  #observe(record: LeaseRecord): number {
    const key = JSON.stringify([
      record.resourceVersion,
      record.holderIdentity,
      record.renewTime?.getTime(),
      record.leaseTransitions,
    ]);
    if (this.#observed?.key !== key) this.#observed = { key, at: this.#clock.now() };
    return this.#observed.at;
  }

  /** A successful renewal that started at `started`: the term now ends at started + deadline. */
  #renewed(started: number): void {
    // From the attempt's start, not its end: the write may have landed (and been seen by a
    // standby) at any moment after we sent it.
    this.#renewedAt = started;
    this.#cancelWatchdog?.();
    const left = started + this.#opts.renewDeadlineMs - this.#clock.now();
    this.#cancelWatchdog = this.#clock.setTimer(() => {
      this.#lose('the renew deadline passed');
    }, left);
  }

  /** Ends the term at once: isLeader false, requests aborted, signal aborted, then onLost. */
  #lose(why: string): void {
    if (!this.#leading) return;
    this.#end();
    this.#opts.log.error({ lease: this.#opts.name, why }, 'lost leadership');
    this.#term.abort(new Error(`leadership lost: ${why}`));
    try {
      this.#onLost?.();
    } catch (err) {
      this.#opts.log.error({ err }, 'onLost threw');
    }
  }

  #end(): void {
    this.#leading = false;
    this.#cancelWatchdog?.();
    this.#stop.abort(new Error('leader election stopped'));
  }

  #sleep(ms: number): Promise<void> {
    const signal = this.#stop.signal;
    return new Promise((resolve) => {
      if (signal.aborted) {
        resolve();
        return;
      }
      const done = () => {
        cancel();
        signal.removeEventListener('abort', done);
        resolve();
      };
      const cancel = this.#clock.setTimer(done, ms);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  #logFailure(err: unknown): void {
    if (this.#stop.signal.aborted) return; // stopping: the abort is ours
    const what = this.#leading ? 'could not renew the lease' : 'could not acquire the lease';
    const level = isTransient(err) ? 'warn' : 'error';
    this.#opts.log[level]({ lease: this.#opts.name, err: describeApiError(err) }, what);
  }
}

/** A signal aborted after ms (by `clock`) or with `parent`; cancel() when done with it. */
function boundedSignal(
  clock: Clock,
  ms: number,
  parent?: AbortSignal,
): { signal: AbortSignal; cancel: () => void } {
  const ctl = new AbortController();
  const onParent = () => {
    ctl.abort(parent?.reason);
  };
  if (parent?.aborted === true) onParent();
  parent?.addEventListener('abort', onParent, { once: true });
  const cancelTimer = clock.setTimer(
    () => {
      ctl.abort(new DOMException('lease request reached the renew deadline', 'TimeoutError'));
    },
    Math.max(0, ms),
  );
  return {
    signal: ctl.signal,
    cancel: () => {
      cancelTimer();
      parent?.removeEventListener('abort', onParent);
    },
  };
}

/** `work`, or a rejection with the signal's reason as soon as it aborts, whichever is first. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      reject(asError(signal.reason));
    };
    if (signal.aborted) onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    work
      .then(resolve, reject)
      .finally(() => {
        signal.removeEventListener('abort', onAbort);
      })
      .catch(() => undefined);
  });
}

const asError = (reason: unknown): Error =>
  reason instanceof Error ? reason : new Error(String(reason));

/**
 * The Lease through client-node 1.x. Its requests have no signal parameter, but each call takes
 * configuration options whose middleware sees the RequestContext after authentication: setting
 * the signal there reaches node-fetch, which destroys the socket on abort.
 */
export function kubeLeasePort(kc: KubeConfig, namespace: string, name: string): LeasePort {
  const api = kc.makeApiClient(CoordinationV1Api);
  // A replace keeps the Lease's metadata (labels, annotations) from the read it is based on.
  let lastMeta: V1ObjectMeta | undefined;
  const seen = (lease: V1Lease): LeaseRecord => {
    lastMeta = lease.metadata;
    return fromLease(lease);
  };
  const metaFor = (record: LeaseRecord): V1ObjectMeta =>
    lastMeta !== undefined && lastMeta.resourceVersion === record.resourceVersion
      ? lastMeta
      : { name, namespace, ...optional('resourceVersion', record.resourceVersion) };
  return {
    async read(signal) {
      try {
        return seen(await api.readNamespacedLease({ name, namespace }, withSignal(signal)));
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    async create(record, signal) {
      const body = toLease(record, { name, namespace });
      return seen(await api.createNamespacedLease({ namespace, body }, withSignal(signal)));
    },
    async replace(record, signal) {
      const body = toLease(record, metaFor(record));
      return seen(await api.replaceNamespacedLease({ name, namespace, body }, withSignal(signal)));
    },
  };
}

/**
 * Per-call options that make a client-node request abort with `signal` (as well as with any
 * signal the KubeConfig set, such as SharedAgentKubeConfig's request timeout).
 */
export function withSignal(signal: AbortSignal): ConfigurationOptions {
  const pass = <T>(value: T) => new Observable(Promise.resolve(value));
  return {
    middleware: [
      {
        pre: (context: RequestContext) => {
          const own = context.getSignal();
          context.setSignal(own === undefined ? signal : AbortSignal.any([signal, own]));
          return pass(context);
        },
        post: (response: ResponseContext) => pass(response),
      },
    ],
    // Appended to the client's own middleware, not replacing it.
    middlewareMergeStrategy: 'append',
  };
}

function fromLease(lease: V1Lease): LeaseRecord {
  const spec = lease.spec ?? {};
  const date = (t: Date | undefined) => (t === undefined ? undefined : new Date(t));
  return {
    holderIdentity: spec.holderIdentity ?? '',
    leaseDurationSeconds: spec.leaseDurationSeconds,
    leaseTransitions: spec.leaseTransitions ?? 0,
    acquireTime: date(spec.acquireTime),
    renewTime: date(spec.renewTime),
    resourceVersion: lease.metadata?.resourceVersion,
  };
}

function toLease(record: LeaseRecord, metadata: V1ObjectMeta): V1Lease {
  // Lease times are MicroTime: a plain Date serializes with milliseconds and is refused.
  const micro = (t: Date | undefined) => (t === undefined ? undefined : new V1MicroTime(t));
  return {
    metadata,
    spec: {
      ...optional('holderIdentity', record.holderIdentity || undefined),
      ...optional('leaseDurationSeconds', record.leaseDurationSeconds),
      leaseTransitions: record.leaseTransitions,
      ...optional('acquireTime', micro(record.acquireTime)),
      ...optional('renewTime', micro(record.renewTime)),
    },
  };
}

/** `{ [key]: value }`, or nothing when value is undefined (exactOptionalPropertyTypes). */
function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return value === undefined ? {} : ({ [key]: value } as { [P in K]?: V });
}
