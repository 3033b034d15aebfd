// NodeMaintenance objects in one namespace, for integration tests (through CustomObjectsApi,
// which passes bodies through untouched).
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { GROUP, KIND, PLURAL, VERSION, type NodeMaintenance } from '../../shared/api/index.js';

export interface Maintenances {
  /** Creates one; `spec` fields override a minimal valid spec (operationName, ticket, no actions). */
  create(name: string, spec: Record<string, unknown>): Promise<void>;
  /** The object, or undefined once it is gone. */
  get(name: string): Promise<NodeMaintenance | undefined>;
  remove(name: string): Promise<void>;
}

export function maintenances(kc: KubeConfig, namespace: string): Maintenances {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const ref = { group: GROUP, version: VERSION, plural: PLURAL, namespace };
  return {
    async create(name, spec) {
      await custom.createNamespacedCustomObject({
        ...ref,
        body: {
          apiVersion: `${GROUP}/${VERSION}`,
          kind: KIND,
          metadata: { name },
          spec: { operationName: name, linearTicket: 'ENG-42', actions: [], ...spec },
        },
      });
    },
    async get(name) {
      try {
        return (await custom.getNamespacedCustomObject({ ...ref, name })) as NodeMaintenance;
      } catch (err) {
        if ((err as { code?: number }).code === 404) return undefined;
        throw err;
      }
    },
    async remove(name) {
      await custom.deleteNamespacedCustomObject({ ...ref, name });
    },
  };
}
