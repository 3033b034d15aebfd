// Reads deploy/ (the files its kustomization.yaml lists) and applies it to a cluster the way
// `kubectl apply --server-side` does. Used by the integration tests and the sandbox, so it
// imports nothing from vitest.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ApiextensionsV1Api,
  KubernetesObjectApi,
  loadAllYaml,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { setTimeout as sleep } from 'node:timers/promises';
import { parse } from 'yaml';

export const DEPLOY_DIR = resolve(fileURLToPath(new URL('../../deploy', import.meta.url)));
export const NOMA_NAMESPACE = 'noma-system';
export const AGENT_SERVICE_ACCOUNT = 'noma-agent';
export const COORDINATOR_SERVICE_ACCOUNT = 'noma-coordinator';
/** Audience of the agent's token for the coordinator (the DaemonSet's projected token). */
export const LINK_AUDIENCE = 'noma.dev';

export type ManifestObject = KubernetesObject & {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
};

/** Kinds that run noma itself; the tests replace them with local processes. */
const WORKLOAD_KINDS = new Set(['DaemonSet', 'Deployment']);

/** The files deploy/kustomization.yaml lists, in its order. */
export function deployFiles(): string[] {
  const k = parse(readFileSync(join(DEPLOY_DIR, 'kustomization.yaml'), 'utf8')) as {
    resources?: unknown;
  };
  if (!Array.isArray(k.resources)) throw new Error('deploy/kustomization.yaml: no resources');
  return k.resources.map((r) => join(DEPLOY_DIR, String(r)));
}

/** Every object of deploy/, as `kubectl kustomize deploy/` lists them (without its labels). */
export function deployObjects(): ManifestObject[] {
  return deployFiles().flatMap((file) =>
    (loadAllYaml(readFileSync(file, 'utf8')) as (ManifestObject | null)[]).filter(
      (o): o is ManifestObject => o !== null,
    ),
  );
}

export function isWorkload(obj: ManifestObject): boolean {
  return WORKLOAD_KINDS.has(obj.kind);
}

/** Finds one object of deploy/ by kind and name. */
export function deployObject(kind: string, name: string): ManifestObject {
  const found = deployObjects().find((o) => o.kind === kind && o.metadata.name === name);
  if (found === undefined) throw new Error(`deploy/ has no ${kind} ${name}`);
  return found;
}

/** The agent's label rules file, as deploy/'s ConfigMap noma-label-rules holds it. */
export function labelRulesText(): string {
  const cm = deployObject('ConfigMap', 'noma-label-rules') as { data?: Record<string, string> };
  const text = cm.data?.['rules.yaml'];
  if (text === undefined) throw new Error('ConfigMap noma-label-rules has no rules.yaml');
  return text;
}

/**
 * Server-side applies `objects` (Namespaces and CRDs first, then the rest in order) and waits
 * until the CRDs are Established. Re-applying is harmless.
 */
export async function applyObjects(
  kc: KubeConfig,
  objects: readonly ManifestObject[],
  fieldManager = 'noma-deploy',
): Promise<void> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  const rank = (o: ManifestObject) =>
    o.kind === 'Namespace' ? 0 : o.kind === 'CustomResourceDefinition' ? 1 : 2;
  const ordered = [...objects].sort((a, b) => rank(a) - rank(b));
  for (const obj of ordered) {
    await api.patch(obj, undefined, undefined, fieldManager, true, 'application/apply-patch+yaml');
  }
  const ext = kc.makeApiClient(ApiextensionsV1Api);
  for (const crd of ordered.filter((o) => o.kind === 'CustomResourceDefinition')) {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const got = await ext.readCustomResourceDefinition({ name: crd.metadata.name });
      if (got.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) {
        break;
      }
      if (Date.now() > deadline) throw new Error(`CRD ${crd.metadata.name} not Established`);
      await sleep(100);
    }
  }
}
