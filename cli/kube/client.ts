import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  PolicyV1Api,
  setHeaderOptions,
  type V1Node,
  type V1Pod,
  type V1PodDisruptionBudget,
} from '@kubernetes/client-node';
import { daemonSetRefs } from '../../coordinator/drain/filters.js';
import { isNotFound, statusCode } from '../../shared/kube-errors.js';
import { UsageError } from '../errors.js';
import { nodeFacts, podsByNode, type NodeFacts } from './node-facts.js';

/** Where the kubeconfig comes from: `--kubeconfig`, else $KUBECONFIG or ~/.kube/config. */
export interface KubeTarget {
  readonly kubeconfig?: string | undefined;
  readonly context?: string | undefined;
}

export function loadKubeConfig(target: KubeTarget): KubeConfig {
  const kc = new KubeConfig();
  if (target.kubeconfig !== undefined) kc.loadFromFile(target.kubeconfig);
  else kc.loadFromDefault();
  if (target.context !== undefined) {
    if (kc.getContextObject(target.context) === null) {
      const known = kc.getContexts().map((c) => c.name);
      throw new UsageError(
        '--context',
        `no context "${target.context}" in the kubeconfig (known: ${known.join(', ') || 'none'})`,
      );
    }
    kc.setCurrentContext(target.context);
  }
  return kc;
}

/** The namespace of the current context, as kubectl uses it when -n is not given. */
export function contextNamespace(kc: KubeConfig): string {
  return kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
}

export async function listNodes(kc: KubeConfig, labelSelector?: string): Promise<V1Node[]> {
  const core = kc.makeApiClient(CoreV1Api);
  const list = await core.listNode(labelSelector === undefined ? {} : { labelSelector });
  return list.items;
}

/** Pods bound to a node that have not finished: the ones that hold GPUs. */
export async function listBoundPods(kc: KubeConfig): Promise<V1Pod[]> {
  const core = kc.makeApiClient(CoreV1Api);
  const list = await core.listPodForAllNamespaces({
    fieldSelector: 'spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed',
  });
  return list.items;
}

/** Sets (value) or removes (null) one label on a node with a merge patch. */
export async function setNodeLabel(
  kc: KubeConfig,
  node: string,
  key: string,
  value: string | null,
): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  await core.patchNode(
    { name: node, body: { metadata: { labels: { [key]: value } } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
}

export function customObjects(kc: KubeConfig): CustomObjectsApi {
  return kc.makeApiClient(CustomObjectsApi);
}

/**
 * A short description of a failed API call: status code and the server's message, as the CLI
 * words it ("HTTP 404: …"); the coordinator's wording is describeApiError's.
 */
export function apiErrorText(err: unknown): string {
  const code = statusCode(err);
  if (code !== undefined) {
    const body = (err as { body?: unknown }).body;
    let detail = typeof body === 'string' ? body : '';
    try {
      const parsed = JSON.parse(detail) as { message?: unknown };
      if (typeof parsed.message === 'string') detail = parsed.message;
    } catch {
      // not JSON: keep the raw body
    }
    return `HTTP ${String(code)}${detail === '' ? '' : `: ${detail}`}`;
  }
  return err instanceof Error ? err.message : String(err);
}

/** Nodes (optionally those matching a selector) with what the pods on them hold. */
export async function fetchNodeFacts(kc: KubeConfig, labelSelector?: string): Promise<NodeFacts[]> {
  const [nodes, pods] = await Promise.all([listNodes(kc, labelSelector), listBoundPods(kc)]);
  const byNode = podsByNode(pods);
  return nodes.map((n) => nodeFacts(n, byNode.get(n.metadata?.name ?? '') ?? []));
}

/** What `noma init --preview` needs to run the drain's decisions without draining. */
export interface DrainFacts {
  /** Not-finished pods bound to each of the nodes asked about. */
  readonly podsByNode: ReadonlyMap<string, V1Pod[]>;
  readonly pdbs: readonly V1PodDisruptionBudget[];
  /** Why the PDBs could not be listed (e.g. RBAC); the pods' decisions do not need them. */
  readonly pdbError?: string;
  /** Whether a DaemonSet (`namespace`, `name`) exists, as the coordinator's drain asks. */
  readonly daemonSetExists: (namespace: string, name: string) => boolean;
}

/**
 * Pods, PodDisruptionBudgets and the DaemonSets the pods on `nodes` point at. Like the
 * coordinator, only a definite 404 counts a DaemonSet as missing.
 */
export async function fetchDrainFacts(
  kc: KubeConfig,
  nodes: readonly string[],
): Promise<DrainFacts> {
  const policy = kc.makeApiClient(PolicyV1Api);
  const [pods, pdbs] = await Promise.all([
    listBoundPods(kc),
    policy.listPodDisruptionBudgetForAllNamespaces().then(
      (list) => ({ items: list.items }),
      (err: unknown) => ({ items: [], error: apiErrorText(err) }),
    ),
  ]);
  const wanted = new Set(nodes);
  const onNodes = new Map([...podsByNode(pods)].filter(([n]) => wanted.has(n)));
  const apps = kc.makeApiClient(AppsV1Api);
  const missing = new Set<string>();
  await Promise.all(
    daemonSetRefs([...onNodes.values()].flat()).map(async (r) => {
      try {
        await apps.readNamespacedDaemonSet(r);
      } catch (err) {
        if (isNotFound(err)) missing.add(`${r.namespace}/${r.name}`);
      }
    }),
  );
  return {
    podsByNode: onNodes,
    pdbs: pdbs.items,
    ...('error' in pdbs ? { pdbError: pdbs.error } : {}),
    daemonSetExists: (ns, name) => !missing.has(`${ns}/${name}`),
  };
}
