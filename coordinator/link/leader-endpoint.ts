// Only the leader serves the agent link; a standby has no port open. So that the agents' Service
// reaches the leader and only the leader, the Service has no selector and the leader points it
// at itself: it writes the Service's one EndpointSlice (`<service>-leader`) with its own pod IP
// when it becomes leader. A new leader overwrites it; until then agents retry (backoff), as they
// do for any unreachable coordinator.
//
// Why not readiness: a standby reported not-ready never becomes ready while the leader lives,
// so a rolling update (which waits for new pods to be ready) and the PodDisruptionBudget (which
// counts ready pods) would both stall. Why not a leader label on the pod: it needs `pods patch`,
// which RBAC cannot limit to the coordinator's own pod; an EndpointSlice can be limited by name.
import { DiscoveryV1Api, type KubeConfig, type V1EndpointSlice } from '@kubernetes/client-node';
import { isNotFound } from '../../shared/kube-errors.js';
import type { Logger } from '../../shared/log.js';
import { retry } from '../../shared/retry.js';

/** The port's name in the Service and the slice: Kubernetes matches them by name. */
export const AGENT_LINK_PORT_NAME = 'agent-link';

export interface LeaderEndpoint {
  readonly namespace: string;
  readonly service: string;
  readonly podIP: string;
  /** For `kubectl get endpointslice -o wide` and the targetRef; optional outside a pod. */
  readonly podName: string | undefined;
  readonly port: number;
}

export const leaderSliceName = (service: string): string => `${service}-leader`;

/** Pure: the EndpointSlice that sends the Service's traffic to this pod. */
export function leaderEndpointSlice(e: LeaderEndpoint, resourceVersion?: string): V1EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: leaderSliceName(e.service),
      namespace: e.namespace,
      // Set when replacing: the update is refused if someone changed the slice meanwhile.
      ...(resourceVersion === undefined ? {} : { resourceVersion }),
      labels: {
        // The Service this slice belongs to (kube-proxy and DNS read it).
        'kubernetes.io/service-name': e.service,
        // Anything but the EndpointSlice controller's own value, or it would remove the slice.
        'endpointslice.kubernetes.io/managed-by': 'coordinator.noma.dev',
        'app.kubernetes.io/name': 'noma',
        'app.kubernetes.io/component': 'coordinator',
      },
    },
    addressType: e.podIP.includes(':') ? 'IPv6' : 'IPv4',
    endpoints: [
      {
        addresses: [e.podIP],
        conditions: { ready: true },
        ...(e.podName === undefined
          ? {}
          : { targetRef: { kind: 'Pod', namespace: e.namespace, name: e.podName } }),
      },
    ],
    ports: [{ name: AGENT_LINK_PORT_NAME, port: e.port, protocol: 'TCP' }],
  };
}

/** Creates or replaces the leader's slice (get + create/replace: RBAC names the one slice). */
export async function publishLeaderEndpoint(kc: KubeConfig, e: LeaderEndpoint): Promise<void> {
  const api = kc.makeApiClient(DiscoveryV1Api);
  const name = leaderSliceName(e.service);
  const current = await api
    .readNamespacedEndpointSlice({ name, namespace: e.namespace })
    .catch((err: unknown) => {
      if (isNotFound(err)) return undefined;
      throw err;
    });
  if (current === undefined) {
    await api.createNamespacedEndpointSlice({
      namespace: e.namespace,
      body: leaderEndpointSlice(e),
    });
    return;
  }
  await api.replaceNamespacedEndpointSlice({
    name,
    namespace: e.namespace,
    body: leaderEndpointSlice(e, current.metadata?.resourceVersion),
  });
}

/**
 * Keeps trying until the slice is written or `signal` aborts: without it no agent reaches
 * this leader, but the rest of the coordinator (drains, status) works and must not wait.
 * Every error is tried again, a refusal too: RBAC fixed by hand must not need a restart.
 */
export async function publishUntilDone(
  kc: KubeConfig,
  e: LeaderEndpoint,
  log: Logger,
  signal: AbortSignal,
  retryMs = 2_000,
): Promise<void> {
  try {
    await retry(() => publishLeaderEndpoint(kc, e), {
      baseMs: retryMs,
      maxMs: retryMs,
      retryable: () => true,
      signal,
      onRetry: (err, attempt) => {
        log.warn(
          { err: (err as Error).message, attempt: attempt + 1 },
          'could not point the agent link Service at this leader; retrying',
        );
      },
    });
  } catch {
    return; // only the signal ends the attempts: leadership or the process is ending
  }
  log.info(
    { slice: leaderSliceName(e.service), address: e.podIP, port: e.port },
    'agent link Service points at this leader',
  );
}
