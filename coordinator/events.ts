// Kubernetes Events on NodeMaintenances and Nodes: what `kubectl describe` shows.
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import pLimit from 'p-limit';
import type { Logger } from '../shared/log.js';

export interface EventTarget {
  readonly apiVersion: string;
  readonly kind: string;
  readonly name: string;
  readonly namespace?: string | undefined;
  readonly uid?: string | undefined;
}

export type EventType = 'Normal' | 'Warning';

export interface EventRecorder {
  record(target: EventTarget, type: EventType, reason: string, message: string): void;
}

const COMPONENT = 'noma-coordinator';

/**
 * Pure: client-go's event spam filter, keyed by object and reason. Each key gets a burst of
 * `burst` events, then one more per `refillMs`. A maintenance of 2000 nodes would otherwise
 * write 2000 "Cordoned" events on its one NodeMaintenance; with the key including the reason,
 * rare events (Completed, Failed) are never crowded out by frequent ones.
 */
export class EventSpamFilter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly burst = 25,
    private readonly refillMs = 5 * 60_000,
  ) {}

  allow(key: string, now: number): boolean {
    const b = this.#buckets.get(key) ?? { tokens: this.burst, at: now };
    const refilled = Math.min(this.burst, b.tokens + (now - b.at) / this.refillMs);
    const ok = refilled >= 1;
    this.#buckets.set(key, { tokens: ok ? refilled - 1 : refilled, at: now });
    // Keys whose bucket is full again carry no state worth keeping.
    if (this.#buckets.size > 10_000) {
      for (const [k, v] of this.#buckets) {
        if (v.tokens + (now - v.at) / this.refillMs >= this.burst) this.#buckets.delete(k);
      }
    }
    return ok;
  }
}

export interface EventRecorderOptions {
  /** Event writes in flight at once. */
  readonly concurrency?: number;
  /** Events waiting to be written beyond which new ones are dropped. */
  readonly maxBacklog?: number;
  /** Told about every event not written (spam filter, backlog, or the write failed). */
  readonly onDropped?: (why: 'throttled' | 'backlog' | 'failed') => void;
}

export function kubeEventRecorder(
  kc: KubeConfig,
  log: Logger,
  opts: EventRecorderOptions = {},
): EventRecorder {
  const core = kc.makeApiClient(CoreV1Api);
  const filter = new EventSpamFilter();
  // Events are best effort: status is the record. They must never compete with status and
  // Node writes for the API server, so few are in flight and a flood is cut, not queued.
  const limit = pLimit(opts.concurrency ?? 4);
  const maxBacklog = opts.maxBacklog ?? 1_000;
  const drop = (why: 'throttled' | 'backlog' | 'failed', reason: string, target: string) => {
    opts.onDropped?.(why);
    log.debug({ why, reason, target }, 'event not recorded');
  };
  return {
    record(target, type, reason, message) {
      const key = `${target.kind}/${target.namespace ?? ''}/${target.name}/${reason}`;
      if (!filter.allow(key, Date.now())) {
        drop('throttled', reason, target.name);
        return;
      }
      if (limit.pendingCount >= maxBacklog) {
        drop('backlog', reason, target.name);
        return;
      }
      // Node events live in "default", as the kubelet's do.
      const namespace = target.namespace ?? 'default';
      const now = new Date();
      void limit(() =>
        core
          .createNamespacedEvent({
            namespace,
            body: {
              metadata: { generateName: `${target.name}.`, namespace },
              involvedObject: {
                apiVersion: target.apiVersion,
                kind: target.kind,
                name: target.name,
                ...(target.namespace === undefined ? {} : { namespace: target.namespace }),
                ...(target.uid === undefined ? {} : { uid: target.uid }),
              },
              type,
              reason,
              message: message.slice(0, 1024),
              source: { component: COMPONENT },
              reportingComponent: COMPONENT,
              reportingInstance: COMPONENT,
              firstTimestamp: now,
              lastTimestamp: now,
              count: 1,
            },
          })
          .catch((err: unknown) => {
            opts.onDropped?.('failed');
            log.warn({ err, reason, target: target.name }, 'could not record event');
          }),
      );
    },
  };
}
