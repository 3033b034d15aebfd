// Leader election on a coordination.k8s.io Lease, so that two replicas can run and only one
// acts. Acquire when the lease is free or expired, renew well before it expires, and treat a
// failed renewal past the deadline as lost leadership (the caller exits: a clean restart is
// safer than two leaders).
import {
  CoordinationV1Api,
  V1MicroTime,
  type KubeConfig,
  type V1Lease,
} from '@kubernetes/client-node';
import type { Logger } from '../shared/log.js';

export interface LeaderOptions {
  readonly kc: KubeConfig;
  readonly log: Logger;
  readonly namespace: string;
  readonly name: string;
  readonly identity: string;
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
}

const statusCode = (err: unknown): number | undefined => (err as { code?: number }).code;

export class LeaderElector {
  private leading = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private lastRenew = 0;
  private readonly api: CoordinationV1Api;

  constructor(private readonly opts: LeaderOptions) {
    this.api = opts.kc.makeApiClient(CoordinationV1Api);
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** Resolves once this process leads; calls onLost if leadership is lost later. */
  async run(onLost: () => void): Promise<void> {
    for (;;) {
      if (this.stopped) throw new Error('leader election stopped');
      if (await this.tryAcquireOrRenew()) break;
      await new Promise((r) => setTimeout(r, this.opts.retryPeriodMs));
    }
    this.leading = true;
    this.opts.log.info({ lease: this.opts.name, identity: this.opts.identity }, 'became leader');
    const renew = async () => {
      if (this.stopped) return;
      const ok = await this.tryAcquireOrRenew().catch(() => false);
      if (!ok && Date.now() - this.lastRenew > this.opts.renewDeadlineMs) {
        this.leading = false;
        this.opts.log.error('lost leadership');
        onLost();
        return;
      }
      this.timer = setTimeout(() => void renew(), this.opts.retryPeriodMs);
    };
    this.timer = setTimeout(() => void renew(), this.opts.retryPeriodMs);
  }

  /** Gives the lease up so that a standby takes over at once instead of after it expires. */
  async release(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.api.readNamespacedLease({
        name: this.opts.name,
        namespace: this.opts.namespace,
      });
      if (lease.spec?.holderIdentity !== this.opts.identity) return;
      lease.spec.holderIdentity = undefined as unknown as string;
      lease.spec.leaseDurationSeconds = 1;
      await this.api.replaceNamespacedLease({
        name: this.opts.name,
        namespace: this.opts.namespace,
        body: lease,
      });
    } catch (err) {
      this.opts.log.warn({ err }, 'could not release the lease');
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.opts;
    // Lease times are MicroTime: a plain Date serializes with milliseconds and is refused.
    const now = new V1MicroTime();
    const durationS = Math.ceil(this.opts.leaseDurationMs / 1000);
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (statusCode(err) !== 404) throw err;
      try {
        await this.api.createNamespacedLease({
          namespace,
          body: {
            metadata: { name, namespace },
            spec: {
              holderIdentity: identity,
              leaseDurationSeconds: durationS,
              acquireTime: now,
              renewTime: now,
              leaseTransitions: 0,
            },
          },
        });
        this.lastRenew = Date.now();
        return true;
      } catch (createErr) {
        if (statusCode(createErr) === 409) return false;
        throw createErr;
      }
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity;
    const renewed = spec.renewTime ? new Date(spec.renewTime).getTime() : 0;
    const expired = renewed + (spec.leaseDurationSeconds ?? durationS) * 1000 < now.getTime();
    if (holder !== undefined && holder !== '' && holder !== identity && !expired) return false;
    const takingOver = holder !== identity;
    lease.spec = {
      holderIdentity: identity,
      ...(spec.acquireTime === undefined ? {} : { acquireTime: spec.acquireTime }),
      ...(spec.leaseTransitions === undefined ? {} : { leaseTransitions: spec.leaseTransitions }),
      leaseDurationSeconds: durationS,
      renewTime: now,
      ...(takingOver
        ? { acquireTime: now, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 }
        : {}),
    };
    try {
      // replace carries resourceVersion: of two candidates, only one wins.
      await this.api.replaceNamespacedLease({ name, namespace, body: lease });
      this.lastRenew = Date.now();
      return true;
    } catch (err) {
      if (statusCode(err) === 409) return false;
      throw err;
    }
  }
}
