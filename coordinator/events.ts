// Kubernetes Events on NodeMaintenances and Nodes: what `kubectl describe` shows.
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
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

export function kubeEventRecorder(kc: KubeConfig, log: Logger): EventRecorder {
  const core = kc.makeApiClient(CoreV1Api);
  return {
    record(target, type, reason, message) {
      // Node events live in "default", as the kubelet's do.
      const namespace = target.namespace ?? 'default';
      const now = new Date();
      // Fire and forget: an Event that cannot be written must not stop a maintenance.
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
          log.warn({ err, reason, target: target.name }, 'could not record event');
        });
    },
  };
}
