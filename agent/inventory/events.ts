import type { NodeApi } from '../kube/client.js';
import type { HealthEvent } from './health.js';

/** Event messages are bounded like every string noma puts into the API. */
const MESSAGE_MAX = 1024;

/**
 * Records `event` on the Node, in `default` where Node events go (as the kubelet's do). The
 * Node's uid is looked up so that `kubectl describe node` finds the Event.
 */
export function nodeEventRecorder(
  api: NodeApi,
  nodeName: string,
): (event: HealthEvent) => Promise<void> {
  return async (event) => {
    const node = await api.readNode(nodeName);
    const now = new Date();
    const uid = node.metadata?.uid;
    await api.createEvent('default', {
      metadata: { generateName: `${nodeName}.noma-` },
      involvedObject: {
        apiVersion: 'v1',
        kind: 'Node',
        name: nodeName,
        ...(uid === undefined ? {} : { uid }),
      },
      reason: event.reason,
      message:
        event.message.length > MESSAGE_MAX
          ? `${event.message.slice(0, MESSAGE_MAX - 1)}…`
          : event.message,
      type: event.type,
      source: { component: 'noma-agent', host: nodeName },
      reportingComponent: 'noma.dev/agent',
      reportingInstance: nodeName,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    });
  };
}
