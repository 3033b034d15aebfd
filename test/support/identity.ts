// ServiceAccount tokens (TokenRequest API) and kubeconfig files that use them: how the tests
// and the sandbox run the agent and the coordinator as the identities deploy/ defines, not as
// admin. Imports nothing from vitest (the sandbox uses it).
import { writeFileSync } from 'node:fs';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';

export interface TokenOptions {
  /** Default: the API server's own audience. */
  audiences?: string[];
  expirationSeconds?: number;
  /**
   * Bind the token to this Pod: it dies with the Pod, and, once the Pod is scheduled, it
   * carries the Pod's node (`authentication.kubernetes.io/node-name`), as a pod's own
   * projected token does.
   */
  boundPod?: { name: string; uid: string };
}

/** Mints a token for an existing ServiceAccount. */
export async function mintToken(
  kc: KubeConfig,
  namespace: string,
  serviceAccount: string,
  opts: TokenOptions = {},
): Promise<string> {
  const core = kc.makeApiClient(CoreV1Api);
  const tr = await core.createNamespacedServiceAccountToken({
    name: serviceAccount,
    namespace,
    body: {
      spec: {
        audiences: opts.audiences ?? [],
        expirationSeconds: opts.expirationSeconds ?? 3600,
        ...(opts.boundPod === undefined
          ? {}
          : {
              boundObjectRef: {
                kind: 'Pod',
                apiVersion: 'v1',
                name: opts.boundPod.name,
                uid: opts.boundPod.uid,
              },
            }),
      },
    },
  });
  const token = tr.status?.token;
  if (token === undefined) throw new Error('TokenRequest returned no token');
  return token;
}

/**
 * Writes a kubeconfig for the cluster of `kc` that authenticates with `token` (mode 0600) and
 * returns its path.
 */
export function writeTokenKubeconfig(
  kc: KubeConfig,
  token: string,
  file: string,
  user: string,
): string {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  if (cluster.caData === undefined) throw new Error('kubeconfig cluster has no inline CA');
  const doc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name: 'noma',
        cluster: { server: cluster.server, 'certificate-authority-data': cluster.caData },
      },
    ],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: user, context: { cluster: 'noma', user } }],
    'current-context': user,
  };
  writeFileSync(file, stringify(doc), { mode: 0o600 });
  return file;
}
