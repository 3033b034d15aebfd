// Installs deploy/crd.yaml on the local control plane the way `kubectl apply --server-side` does.
import { readFileSync } from 'node:fs';
import {
  ApiextensionsV1Api,
  KubernetesObjectApi,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { parse } from 'yaml';
import { waitFor } from './kube.js';

export const CRD_PATH = new URL('../../deploy/crd.yaml', import.meta.url);

export async function installCRD(kc: KubeConfig): Promise<void> {
  const crd = parse(readFileSync(CRD_PATH, 'utf8')) as KubernetesObject & {
    metadata: { name: string };
  };
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
