// The agent link in tests and benchmarks: TLS material for the coordinator, the agents'
// ServiceAccount, and node-bound tokens (a real Pod on the node, a token bound to it with the
// noma.dev audience), as the DaemonSet's projected token would be. Imports nothing from vitest.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { generateDevCerts } from '../../shared/dev-certs.js';
import { mintToken } from './identity.js';

export const AGENT_SA = 'noma-agent';
export const AUDIENCE = 'noma.dev';

export interface LinkTls {
  readonly dir: string;
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
}

export async function writeLinkTls(): Promise<LinkTls> {
  const dir = await mkdtemp(join(tmpdir(), 'noma-link-'));
  const certs = await generateDevCerts(['localhost', '127.0.0.1']);
  const tls = {
    dir,
    caFile: join(dir, 'ca.crt'),
    certFile: join(dir, 'tls.crt'),
    keyFile: join(dir, 'tls.key'),
  };
  await writeFile(tls.caFile, certs.caCert);
  await writeFile(tls.certFile, certs.cert);
  await writeFile(tls.keyFile, certs.key, { mode: 0o600 });
  return tls;
}

/**
 * A port that was free a moment ago (for a coordinator that is restarted on the same port),
 * below Linux's ephemeral range (32768+): a port the kernel hands out is the local end of some
 * other test's outgoing connection a moment later, and the coordinator's listen then fails.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (await canListen(port)) return port;
  }
  throw new Error('no free port found below the ephemeral range');
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => {
      resolve(false);
    });
    // 0.0.0.0, as the coordinator listens: a port taken on any address does not do.
    s.listen(port, '0.0.0.0', () => {
      s.close(() => {
        resolve(true);
      });
    });
  });
}

export async function ensureServiceAccount(
  kc: KubeConfig,
  namespace: string,
  name = AGENT_SA,
): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  await core
    .createNamespacedServiceAccount({ namespace, body: { metadata: { name } } })
    .catch((err: unknown) => {
      if ((err as { code?: number }).code !== 409) throw err;
    });
}

/**
 * Creates a Pod of `serviceAccount` on `node` (the agent's pod, as the DaemonSet would) and
 * mints a token bound to it: the token carries the node.
 */
export async function nodeBoundToken(
  kc: KubeConfig,
  namespace: string,
  node: string,
  opts: { serviceAccount?: string; audience?: string; podName?: string } = {},
): Promise<string> {
  const core = kc.makeApiClient(CoreV1Api);
  const serviceAccount = opts.serviceAccount ?? AGENT_SA;
  await ensureServiceAccount(kc, namespace, serviceAccount);
  const pod = await core.createNamespacedPod({
    namespace,
    body: {
      metadata: {
        name: opts.podName ?? `agent-${node}`.slice(0, 63),
        labels: { 'app.kubernetes.io/component': 'agent-under-test' },
      },
      spec: {
        nodeName: node,
        serviceAccountName: serviceAccount,
        automountServiceAccountToken: false,
        terminationGracePeriodSeconds: 0,
        tolerations: [{ operator: 'Exists' }],
        containers: [{ name: 'agent', image: 'noma-agent:test' }],
      },
    },
  });
  return mintToken(kc, namespace, serviceAccount, {
    audiences: [opts.audience ?? AUDIENCE],
    boundPod: { name: pod.metadata?.name ?? '', uid: pod.metadata?.uid ?? '' },
  });
}

/** The agent port a coordinator logged ("agent link listening"). */
export function agentPortFrom(logs: readonly string[]): number | undefined {
  for (const line of logs) {
    const m = /"agentPort":(\d+)/.exec(line);
    if (m?.[1] !== undefined) return Number(m[1]);
  }
  return undefined;
}
