// Which agents are connected, asked of the coordinator's leader (`/agents` on its HTTP port).
// Only the leader serves the agent link, so only its answer counts; a standby's would be empty.
import { CoordinationV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { UsageError } from '../errors.js';
import { apiErrorText } from '../kube/client.js';
import { parseAgents, type AgentConnection } from '../kube/node-facts.js';

/** Where to ask: the leader-election Lease (through the API server), or a URL given by hand. */
export type CoordinatorRef =
  | { readonly kind: 'lease'; readonly namespace: string; readonly name: string }
  | { readonly kind: 'url'; readonly url: string };

/** The coordinator's defaults (deploy/): namespace noma-system, Lease noma-coordinator. */
export const DEFAULT_COORDINATOR = {
  kind: 'lease',
  namespace: 'noma-system',
  name: 'noma-coordinator',
} as const satisfies CoordinatorRef;

/** Pure: `--coordinator` as a URL (`http://…`, `https://…`) or `[namespace/]lease`. */
export function parseCoordinatorRef(text: string): CoordinatorRef {
  if (/^https?:\/\//.test(text)) return { kind: 'url', url: text.replace(/\/+$/, '') };
  const m = /^(?:([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/)?([a-z0-9]([-.a-z0-9]*[a-z0-9])?)$/.exec(text);
  if (m?.[3] === undefined) {
    throw new UsageError(
      '--coordinator',
      `"${text}" is neither an http(s) URL nor [namespace/]lease`,
    );
  }
  return { kind: 'lease', namespace: m[1] ?? DEFAULT_COORDINATOR.namespace, name: m[3] };
}

function agentsFrom(body: unknown, where: string): Map<string, AgentConnection> {
  const parsed = parseAgents(typeof body === 'string' ? (JSON.parse(body) as unknown) : body);
  if (parsed === undefined) throw new Error(`${where}: the answer is not a list of agents`);
  return parsed;
}

/** Pure: whether a coordinator's `/readyz` body says it is the standby (no agent link). */
export function isStandby(readyz: unknown): boolean {
  return (readyz as { role?: unknown } | null)?.role === 'standby';
}

/**
 * A URL given by hand may reach either replica (a port-forward to the Deployment picks one);
 * the standby's list is always empty, so it is refused rather than read as "none connected".
 */
async function fromUrl(url: string, signal: AbortSignal): Promise<Map<string, AgentConnection>> {
  const ready = await fetch(`${url}/readyz`, { signal });
  if (isStandby(await ready.json().catch(() => undefined))) {
    throw new Error(`${url} is the standby coordinator: ask the leader (its Lease's holder)`);
  }
  const res = await fetch(`${url}/agents`, { signal });
  if (!res.ok) throw new Error(`${url}/agents: HTTP ${res.status}`);
  return agentsFrom(await res.json(), `${url}/agents`);
}

/**
 * Through the API server: the Lease names the leader (its identity is the pod's name in
 * deploy/), the pod names its `http` port, and the pod proxy reaches it. Needs `get` on leases,
 * pods and pods/proxy in the coordinator's namespace.
 */
async function fromLease(
  kc: KubeConfig,
  ref: { namespace: string; name: string },
): Promise<Map<string, AgentConnection>> {
  const lease = await kc
    .makeApiClient(CoordinationV1Api)
    .readNamespacedLease(ref)
    .catch((err: unknown) => {
      throw new Error(`Lease ${ref.namespace}/${ref.name}: ${apiErrorText(err)}`);
    });
  const holder = lease.spec?.holderIdentity;
  if (holder === undefined || holder === '') {
    throw new Error(`Lease ${ref.namespace}/${ref.name} has no holder (no leader)`);
  }
  const core = kc.makeApiClient(CoreV1Api);
  const pod = await core
    .readNamespacedPod({ namespace: ref.namespace, name: holder })
    .catch((err: unknown) => {
      throw new Error(`leader pod ${ref.namespace}/${holder}: ${apiErrorText(err)}`);
    });
  const port = pod.spec?.containers
    .flatMap((c) => c.ports ?? [])
    .find((p) => p.name === 'http')?.containerPort;
  if (port === undefined) throw new Error(`leader pod ${ref.namespace}/${holder} has no http port`);
  const where = `pods/${holder}:${port}/proxy/agents`;
  const body: unknown = await core
    .connectGetNamespacedPodProxyWithPath({
      namespace: ref.namespace,
      name: `${holder}:${port}`,
      path: 'agents',
    })
    .catch((err: unknown) => {
      throw new Error(`${where}: ${apiErrorText(err)}`);
    });
  return agentsFrom(body, where);
}

/** The connected agents by node, or why they are unknown. Never throws. */
export async function fetchAgents(
  kc: KubeConfig,
  ref: CoordinatorRef,
  signal: AbortSignal,
): Promise<{ agents: Map<string, AgentConnection> } | { error: string }> {
  try {
    const agents = ref.kind === 'url' ? await fromUrl(ref.url, signal) : await fromLease(kc, ref);
    return { agents };
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
}
