// Agent link tokens bound to DaemonSet pods, as deploy/'s DaemonSet gives its agents: a drain
// leaves DaemonSet pods in place, so an agent's pod (and the token bound to it) survives the
// full drain before a Reboot, where a bare pod (link.ts nodeBoundToken) would block that drain
// as an unmanaged pod. Imports nothing from vitest.
import { setTimeout as sleep } from 'node:timers/promises';
import { AppsV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { mintToken } from './identity.js';
import { AGENT_SA, AUDIENCE, ensureServiceAccount } from './link.js';

const DS_LABEL = 'noma.dev/test-agent-ds';

/**
 * Creates a DaemonSet of the agent ServiceAccount on the nodes matching `nodeSelector`, waits
 * until it has a scheduled pod on each of `nodes`, and mints a link token (audience noma.dev)
 * bound to each pod. Returns the tokens by node.
 */
export async function daemonSetBoundTokens(
  kc: KubeConfig,
  namespace: string,
  name: string,
  nodeSelector: Record<string, string>,
  nodes: readonly string[],
  timeoutMs = 60_000,
): Promise<Map<string, string>> {
  await ensureServiceAccount(kc, namespace);
  const labels = { [DS_LABEL]: name, 'app.kubernetes.io/component': 'agent-under-test' };
  await kc.makeApiClient(AppsV1Api).createNamespacedDaemonSet({
    namespace,
    body: {
      metadata: { name },
      spec: {
        selector: { matchLabels: { [DS_LABEL]: name } },
        template: {
          metadata: { labels },
          spec: {
            nodeSelector,
            serviceAccountName: AGENT_SA,
            automountServiceAccountToken: false,
            terminationGracePeriodSeconds: 0,
            tolerations: [{ operator: 'Exists' }],
            containers: [{ name: 'agent', image: 'noma-agent:test' }],
          },
        },
      },
    },
  });
  const pods = await waitForPods(kc, namespace, `${DS_LABEL}=${name}`, nodes, timeoutMs);
  const tokens = new Map<string, string>();
  for (const node of nodes) {
    const pod = pods.get(node);
    if (pod === undefined) throw new Error(`no agent pod on ${node}`);
    tokens.set(
      node,
      await mintToken(kc, namespace, AGENT_SA, { audiences: [AUDIENCE], boundPod: pod }),
    );
  }
  return tokens;
}

async function waitForPods(
  kc: KubeConfig,
  namespace: string,
  labelSelector: string,
  nodes: readonly string[],
  timeoutMs: number,
): Promise<Map<string, { name: string; uid: string }>> {
  const core = kc.makeApiClient(CoreV1Api);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const list = await core.listNamespacedPod({ namespace, labelSelector });
    const byNode = new Map<string, { name: string; uid: string }>();
    for (const p of list.items) {
      const node = p.spec?.nodeName;
      const { name, uid } = p.metadata ?? {};
      if (node !== undefined && name !== undefined && uid !== undefined) {
        byNode.set(node, { name, uid });
      }
    }
    if (nodes.every((n) => byNode.has(n))) return byNode;
    if (Date.now() > deadline) {
      throw new Error(`DaemonSet pods on ${nodes.join(',')} not scheduled in ${timeoutMs} ms`);
    }
    await sleep(200);
  }
}
