// Which agents are connected, asked of the coordinator's leader (`/agents` on its HTTP port).
// Only the leader serves the agent link, so only its answer counts; a standby's would be empty.
// `/agents` needs a bearer token allowed to get it (ClusterRole noma-metrics-reader): the one
// given with --token, or else a short-lived one minted (TokenRequest) for the ServiceAccount
// noma-metrics-reader in the coordinator's namespace, which deploy/endpoints-rbac.yaml binds to
// that ClusterRole. The user's own credential never goes to the coordinator: through the pod
// proxy it would travel in plain HTTP to a pod, and it is worth far more than this one.
import {
  CoordinationV1Api,
  CoreV1Api,
  setHeaderOptions,
  type KubeConfig,
} from '@kubernetes/client-node';
import { statusCode } from '../../shared/kube-errors.js';
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

/** The ServiceAccount whose tokens may read `/agents` (deploy/endpoints-rbac.yaml). */
export const READER_SERVICE_ACCOUNT = 'noma-metrics-reader';
/** The shortest a TokenRequest may ask for; `noma nodes` needs seconds. */
const TOKEN_SECONDS = 600;
/**
 * The API server's pod proxy drops Authorization (it authenticated the caller for itself) and
 * forwards this one; the coordinator reads either (shared/endpoint-auth.ts).
 */
const PROXIED_AUTH_HEADER = 'X-Noma-Authorization';

/** The token for `/agents`, or why there is none. */
export type Credential =
  { readonly token: string } | { readonly why: string; readonly namespace: string };

/** Pure: where the reader ServiceAccount is: the Lease's namespace, else noma-system. */
export function readerNamespace(ref: CoordinatorRef): string {
  return ref.kind === 'lease' ? ref.namespace : DEFAULT_COORDINATOR.namespace;
}

async function mintReaderToken(kc: KubeConfig, namespace: string): Promise<Credential> {
  const sa = `${namespace}/${READER_SERVICE_ACCOUNT}`;
  try {
    const tr = await kc.makeApiClient(CoreV1Api).createNamespacedServiceAccountToken({
      namespace,
      name: READER_SERVICE_ACCOUNT,
      body: { spec: { audiences: [], expirationSeconds: TOKEN_SECONDS } },
    });
    const token = tr.status?.token;
    return token === undefined || token === ''
      ? { why: `no token for ${sa}`, namespace }
      : { token };
  } catch (err) {
    return { why: `no token for ${sa}: ${apiErrorText(err)}`, namespace };
  }
}

/** Why the coordinator refused (shared/health-server.ts REASON_HEADER). */
const REASON_HEADER = 'x-noma-reason';

/**
 * Pure: the coordinator's refusal (401 or 403, with the reason it gives in its x-noma-reason
 * header) and what to do about it; undefined for anything else, e.g. the API server refusing
 * the pod proxy, which gives no such header.
 */
export function refusalText(
  code: number,
  reason: string | undefined,
  cred: Credential,
): string | undefined {
  if ((code !== 401 && code !== 403) || reason === undefined) return undefined;
  const fix =
    'token' in cred
      ? code === 403
        ? "bind the token's identity to the ClusterRole noma-metrics-reader"
        : 'pass a valid --token'
      : `${cred.why}; pass --token (e.g. \`kubectl create token -n ${cred.namespace} ${READER_SERVICE_ACCOUNT}\`)`;
  return `HTTP ${String(code)}: ${reason.slice(0, 256)} (${fix})`;
}

/** The reason header of a fetch Response or of client-node's ApiException (`headers`). */
function reasonOf(headers: unknown): string | undefined {
  if (headers instanceof Headers) return headers.get(REASON_HEADER) ?? undefined;
  const value = (headers as Record<string, unknown> | null | undefined)?.[REASON_HEADER];
  return typeof value === 'string' ? value : undefined;
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
async function fromUrl(
  url: string,
  credential: Promise<Credential>,
  signal: AbortSignal,
): Promise<Map<string, AgentConnection>> {
  const ready = await fetch(`${url}/readyz`, { signal });
  if (isStandby(await ready.json().catch(() => undefined))) {
    throw new Error(`${url} is the standby coordinator: ask the leader (its Lease's holder)`);
  }
  const cred = await credential;
  const headers: Record<string, string> =
    'token' in cred ? { authorization: `Bearer ${cred.token}` } : {};
  const res = await fetch(`${url}/agents`, { signal, headers });
  if (!res.ok) {
    const why = refusalText(res.status, reasonOf(res.headers), cred);
    throw new Error(`${url}/agents: ${why ?? `HTTP ${String(res.status)}`}`);
  }
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
  credential: Promise<Credential>,
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
  const cred = await credential;
  const body: unknown = await core
    .connectGetNamespacedPodProxyWithPath(
      { namespace: ref.namespace, name: `${holder}:${port}`, path: 'agents' },
      'token' in cred ? setHeaderOptions(PROXIED_AUTH_HEADER, `Bearer ${cred.token}`) : undefined,
    )
    .catch((err: unknown) => {
      const code = statusCode(err);
      const headers = (err as { headers?: unknown } | null)?.headers;
      const why = code === undefined ? undefined : refusalText(code, reasonOf(headers), cred);
      throw new Error(`${where}: ${why ?? apiErrorText(err)}`);
    });
  return agentsFrom(body, where);
}

/**
 * The connected agents by node, or why they are unknown. Never throws. `token`: --token;
 * without it one is minted, at the same time as the leader is looked up.
 */
export async function fetchAgents(
  kc: KubeConfig,
  ref: CoordinatorRef,
  signal: AbortSignal,
  token?: string,
): Promise<{ agents: Map<string, AgentConnection> } | { error: string }> {
  const credential =
    token === undefined ? mintReaderToken(kc, readerNamespace(ref)) : Promise.resolve({ token });
  try {
    const agents =
      ref.kind === 'url'
        ? await fromUrl(ref.url, credential, signal)
        : await fromLease(kc, ref, credential);
    return { agents };
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
}
