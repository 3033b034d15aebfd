// Installs deploy/crd.yaml on the local control plane the way `kubectl apply --server-side` does.
import { readFileSync } from 'node:fs';
import {
  ApiextensionsV1Api,
  KubernetesObjectApi,
  loadYaml,
  type KubeConfig,
  type V1CustomResourceDefinition,
} from '@kubernetes/client-node';
import { waitFor } from './kube.js';

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
  await waitFor(`CRD ${crd.metadata.name} Established`, async () => {
    const got = await ext.readCustomResourceDefinition({ name: crd.metadata.name });
    return got.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
  });
}
