// Changes to Node objects, each a read-modify-write guarded by resourceVersion: if anyone else
// changed the node in between (a taint added by another controller, say), the write fails with
// 409 and is redone on the fresh object, so nothing of theirs is lost.
import {
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1Node,
  type V1Taint,
} from '@kubernetes/client-node';
import type { LimitFunction } from 'p-limit';
import { isNotFound } from '../../shared/kube-errors.js';
import { retryOnConflict } from '../../shared/retry.js';
import {
  CLAIM_ANNOTATION,
  LEFT_BY_ANNOTATION,
  MAINTENANCE_ANNOTATION,
  MAINTENANCE_LABEL,
} from '../../shared/maintenance-keys.js';
import {
  claimOf,
  foreignClaim,
  formatClaim,
  formatLeftBy,
  type Claim,
  type LeftBy,
} from './claims.js';
import { addTaints, removeOurTaints, taintsEqual, type TaintSpec } from './taints.js';

const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
/** Conflicts redone before giving up: the first write and up to this many more. */
const MAX_CONFLICTS = 10;

/** Thrown by enter() when another maintenance holds the node: nothing was changed. */
export class ClaimedElsewhereError extends Error {
  constructor(readonly claim: Claim) {
    super(
      `node is claimed by maintenance ${claim.maintenance} (${claim.phase || 'unknown phase'})`,
    );
    this.name = 'ClaimedElsewhereError';
  }
}

export interface NodeOps {
  read(name: string): Promise<V1Node | undefined>;
  /**
   * Claim (CLAIM_ANNOTATION), cordon, add taints, set the maintenance label/annotation, in one
   * resourceVersion-guarded write, so that two maintenances can never both hold the node.
   * Throws ClaimedElsewhereError when another maintenance's claim is there (unless
   * `takeOver(claim)` says that claim is stale). Idempotent. `known`, the node as just read,
   * saves reading it again (a stale one costs a 409 and a fresh read).
   */
  enter(
    name: string,
    change: {
      taints: readonly TaintSpec[];
      label: string;
      owner: string;
      claim: Claim;
      takeOver?: (claim: Claim) => boolean;
    },
    known?: V1Node,
  ): Promise<void>;
  /** Adds taints (NoExecute ones, once the drain is done). Idempotent. */
  addTaints(name: string, taints: readonly TaintSpec[]): Promise<void>;
  /**
   * Rewrites the phase in the node's claim, if the claim is `claim.uid`'s. `known` (the cached
   * node) saves a read when its resourceVersion is current.
   */
  updateClaim(name: string, claim: Claim, known?: V1Node): Promise<void>;
  /**
   * The node leaves a maintenance that ends without returning it (no `Complete`): its claim
   * goes, and LEFT_BY_ANNOTATION records noma's cordon and taints for a later maintenance.
   * Nothing happens unless the node carries `uid`'s claim.
   */
  release(name: string, uid: string, leftBy: LeftBy): Promise<void>;
  /**
   * Remove what noma added: its taints (not those the node had before), its label, annotation,
   * claim and left-by mark, and uncordon if `uncordon`. Idempotent; a missing node is not an
   * error, and a node another maintenance claims (`uid` is not the claim's) is left alone.
   */
  leave(
    name: string,
    uid: string,
    taints: readonly TaintSpec[],
    initialTaints: readonly TaintSpec[],
    uncordon: boolean,
  ): Promise<void>;
  remove(name: string): Promise<void>;
}

/**
 * The one read-modify-write of a Node: `change` computes a merge patch from the fresh node
 * (undefined: nothing to do), written with the node's resourceVersion; a conflict (someone
 * changed the node in between) reads again and asks `change` again, so nothing of theirs is
 * lost. Returns the node as written, or undefined when the node is gone or nothing was to do.
 * `known`, the node as just read, saves the first read.
 */
export async function guardedNodeUpdate(
  core: CoreV1Api,
  limit: <T>(fn: () => Promise<T>) => Promise<T>,
  name: string,
  change: (node: V1Node) => Record<string, unknown> | undefined,
  known?: V1Node,
): Promise<V1Node | undefined> {
  const once = async (attempt: number): Promise<V1Node | undefined> => {
    let node = attempt === 0 ? known : undefined;
    if (node === undefined) {
      try {
        node = await limit(() => core.readNode({ name }));
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    }
    const patch = change(node);
    if (patch === undefined) return undefined;
    const metadata = (patch['metadata'] ?? {}) as Record<string, unknown>;
    const body = {
      ...patch,
      metadata: { ...metadata, resourceVersion: node.metadata?.resourceVersion },
    };
    return await limit(() => core.patchNode({ name, body }, MERGE));
  };
  return retryOnConflict(once, { attempts: MAX_CONFLICTS + 1 });
}

/**
 * `limit` bounds the Node calls in flight: a maintenance of 2000 nodes starts 2000 node tasks
 * at once, and each would otherwise open its connection at the same moment.
 */
export function kubeNodeOps(kc: KubeConfig, limit: LimitFunction): NodeOps {
  const core = kc.makeApiClient(CoreV1Api);

  const read = async (name: string): Promise<V1Node | undefined> => {
    try {
      return await limit(() => core.readNode({ name }));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  };

  const update = (
    name: string,
    change: (node: V1Node) => Record<string, unknown> | undefined,
    known?: V1Node,
  ): Promise<void> => guardedNodeUpdate(core, limit, name, change, known).then(() => undefined);

  return {
    read,
    enter: (name, { taints, label, owner, claim, takeOver }, known) =>
      update(
        name,
        (node) => {
          const other = foreignClaim(node, claim.uid);
          if (other !== undefined && takeOver?.(other) !== true) {
            throw new ClaimedElsewhereError(other);
          }
          const current = node.spec?.taints ?? [];
          const next = addTaints(current, taints);
          const annotations = node.metadata?.annotations ?? {};
          const mine = claimOf(node);
          const labelled =
            node.metadata?.labels?.[MAINTENANCE_LABEL] === label &&
            annotations[MAINTENANCE_ANNOTATION] === owner &&
            mine?.uid === claim.uid &&
            mine.phase === claim.phase &&
            annotations[LEFT_BY_ANNOTATION] === undefined;
          if (node.spec?.unschedulable === true && taintsEqual(current, next) && labelled) {
            return undefined;
          }
          return {
            metadata: {
              labels: { [MAINTENANCE_LABEL]: label },
              annotations: {
                [MAINTENANCE_ANNOTATION]: owner,
                [CLAIM_ANNOTATION]: formatClaim(claim),
                // This maintenance takes over what an earlier one left (initialState.inherited).
                [LEFT_BY_ANNOTATION]: null,
              },
            },
            spec: { unschedulable: true, taints: next },
          };
        },
        known,
      ),
    addTaints: (name, taints) =>
      update(name, (node) => {
        const current = node.spec?.taints ?? [];
        const next = addTaints(current, taints);
        return taintsEqual(current, next) ? undefined : { spec: { taints: next } };
      }),
    updateClaim: (name, claim, known) =>
      update(
        name,
        (node) => {
          const mine = claimOf(node);
          if (mine?.uid !== claim.uid || mine.phase === claim.phase) return undefined;
          return { metadata: { annotations: { [CLAIM_ANNOTATION]: formatClaim(claim) } } };
        },
        known,
      ),
    release: (name, uid, leftBy) =>
      update(name, (node) => {
        // Only our own claim: none means released already (or never taken), and someone
        // else's means the node has moved on.
        if (claimOf(node)?.uid !== uid) return undefined;
        const value = formatLeftBy(leftBy);
        return {
          metadata: {
            annotations: { [CLAIM_ANNOTATION]: null, [LEFT_BY_ANNOTATION]: value },
          },
        };
      }),
    leave: (name, uid, taints, initialTaints, uncordon) =>
      update(name, (node) => {
        if (foreignClaim(node, uid) !== undefined) return undefined;
        const current: V1Taint[] = node.spec?.taints ?? [];
        const next = removeOurTaints(current, taints, initialTaints);
        const annotations = node.metadata?.annotations ?? {};
        const marked =
          node.metadata?.labels?.[MAINTENANCE_LABEL] !== undefined ||
          annotations[MAINTENANCE_ANNOTATION] !== undefined ||
          annotations[CLAIM_ANNOTATION] !== undefined ||
          annotations[LEFT_BY_ANNOTATION] !== undefined;
        const cordoned = node.spec?.unschedulable === true;
        if (!marked && taintsEqual(current, next) && !(uncordon && cordoned)) return undefined;
        return {
          metadata: {
            labels: { [MAINTENANCE_LABEL]: null },
            annotations: {
              [MAINTENANCE_ANNOTATION]: null,
              [CLAIM_ANNOTATION]: null,
              [LEFT_BY_ANNOTATION]: null,
            },
          },
          spec: { taints: next, ...(uncordon ? { unschedulable: false } : {}) },
        };
      }),
    remove: async (name) => {
      try {
        await limit(() => core.deleteNode({ name }));
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    },
  };
}
