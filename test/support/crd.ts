// Installs deploy/crd.yaml on the local control plane the way `kubectl apply --server-side` does.
import { readFileSync } from 'node:fs';
import {
  ApiextensionsV1Api,
  KubernetesObjectApi,
  loadYaml,
  type KubeConfig,
  type V1CustomResourceDefinition,
} from '@kubernetes/client-node';
import { setTimeout as sleep } from 'node:timers/promises';

export const CRD_PATH = new URL('../../deploy/crd.yaml', import.meta.url);

export async function installCRD(kc: KubeConfig): Promise<void> {
  // loadYaml, not a plain parse: client-node serializes by its model classes and would
  // silently drop keys it does not know in plain JSON form (x-kubernetes-validations).
  const crd = loadYaml<V1CustomResourceDefinition & { metadata: { name: string } }>(
    readFileSync(CRD_PATH, 'utf8'),
  );
  const objects = KubernetesObjectApi.makeApiClient(kc);
  await objects.patch(
    crd,
    undefined,
    undefined,
    'noma-tests',
    true,
    'application/apply-patch+yaml',
  );
  const ext = kc.makeApiClient(ApiextensionsV1Api);
  // No vitest helpers here: benchmarks and the sandbox install the CRD too.
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const got = await ext.readCustomResourceDefinition({ name: crd.metadata.name });
    if (got.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) {
      return;
    }
    await sleep(100);
  }
  throw new Error(`CRD ${crd.metadata.name} not Established after 30 s`);
}
