// NodeMaintenance objects in one namespace, for integration tests (through CustomObjectsApi,
// which passes bodies through untouched).
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import {
  GROUP,
  KIND,
  PLURAL,
  VERSION,
  type NodeMaintenance,
  type NodeStatus,
} from '../../shared/api/index.js';
import { waitFor } from './kube.js';

export interface Maintenances {
  /** Creates one; `spec` fields override a minimal valid spec (operationName, ticket, no actions). */
  create(name: string, spec: Record<string, unknown>): Promise<void>;
  /** The object, or undefined once it is gone. */
  get(name: string): Promise<NodeMaintenance | undefined>;
  remove(name: string): Promise<void>;
  /** Waits until its status.phase is `phase` (or one of them) and returns it. */
  waitPhase(
    name: string,
    phase: string | readonly string[],
    timeoutMs?: number,
  ): Promise<NodeMaintenance>;
}

/** One node's entry in a NodeMaintenance's status, if it has one. */
export const nodeStatus = (m: NodeMaintenance | undefined, node: string): NodeStatus | undefined =>
  m?.status?.nodes?.find((n) => n.name === node);

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
    waitPhase(name, phase, timeoutMs = 45_000) {
      const phases: readonly string[] = typeof phase === 'string' ? [phase] : phase;
      return waitFor(
        `${name} in ${phases.join('|')}`,
        async () => {
          const m = await this.get(name);
          return m !== undefined && phases.includes(m.status?.phase ?? '') ? m : undefined;
        },
        timeoutMs,
        200,
      );
    },
  };
}
