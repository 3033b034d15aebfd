// The CLI's reads and writes of one NodeMaintenance: read (checked against the schema), merge
// patch, and a read-modify-write that is redone when someone else wrote in between.
import { PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import {
  GROUP,
  PLURAL,
  VERSION,
  formatErrors,
  validateNodeMaintenance,
  type NodeMaintenance,
} from '../../shared/api/index.js';
import { isConflict, isNotFound } from '../../shared/kube-errors.js';
import { retryOnConflict } from '../../shared/retry.js';
import { apiErrorText, customObjects } from '../kube/client.js';

const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const MAX_CONFLICTS = 8;

/** A failure the command reports as `error: …` with exit status 1. */
export class CommandFailed extends Error {
  override name = 'CommandFailed';
}

export interface MaintenanceRef {
  readonly kc: KubeConfig;
  readonly namespace: string;
  readonly name: string;
}

const refText = (ref: MaintenanceRef) => `NodeMaintenance ${ref.namespace}/${ref.name}`;

function checked(ref: MaintenanceRef, raw: unknown): NodeMaintenance {
  const valid = validateNodeMaintenance(raw);
  if (!valid.ok) {
    throw new CommandFailed(
      `${refText(ref)} does not match the NodeMaintenance schema (${formatErrors(valid.errors)})`,
    );
  }
  return valid.value;
}

function failed(ref: MaintenanceRef, doing: string, err: unknown): CommandFailed {
  if (isNotFound(err)) return new CommandFailed(`${refText(ref)} not found`);
  return new CommandFailed(`${doing} ${refText(ref)}: ${apiErrorText(err)}`);
}

/** The maintenance, or undefined when it does not exist (any other error throws). */
export async function readMaintenance(ref: MaintenanceRef): Promise<NodeMaintenance | undefined> {
  try {
    const raw: unknown = await customObjects(ref.kc).getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      namespace: ref.namespace,
      name: ref.name,
    });
    return checked(ref, raw);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    if (err instanceof CommandFailed) throw err;
    throw failed(ref, 'reading', err);
  }
}

/** Like readMaintenance, but a missing maintenance is an error. */
export async function mustRead(ref: MaintenanceRef): Promise<NodeMaintenance> {
  const m = await readMaintenance(ref);
  if (m === undefined) throw new CommandFailed(`${refText(ref)} not found`);
  return m;
}

/** A merge patch of a NodeMaintenance: the parts the CLI writes. */
export interface MaintenancePatch {
  readonly metadata?: { readonly annotations?: Record<string, string | null> };
  readonly spec?: { readonly paused?: boolean };
}

/** Merge patch; with metadata.resourceVersion in the body the API server refuses it (409) if stale. */
async function rawPatch(ref: MaintenanceRef, body: object): Promise<NodeMaintenance> {
  const raw: unknown = await customObjects(ref.kc).patchNamespacedCustomObject(
    {
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      namespace: ref.namespace,
      name: ref.name,
      body,
    },
    MERGE,
  );
  return checked(ref, raw);
}

/** Merge-patches the maintenance (no resourceVersion: for writes that do not depend on a read). */
export async function patchMaintenance(
  ref: MaintenanceRef,
  patch: MaintenancePatch,
): Promise<NodeMaintenance> {
  try {
    return await rawPatch(ref, patch);
  } catch (err) {
    throw err instanceof CommandFailed ? err : failed(ref, 'writing', err);
  }
}

/**
 * Read-modify-write: `decide` sees the maintenance as it is and returns the patch to write
 * (or undefined: nothing to write). The patch carries the resourceVersion that was read, so a
 * write racing with the coordinator's (which removes entries it acted on) is refused with 409
 * and decided again on the fresh object, never losing either side's change.
 */
export async function updateMaintenance<T>(
  ref: MaintenanceRef,
  decide: (m: NodeMaintenance) => { patch?: MaintenancePatch; result: T },
): Promise<{ result: T; after: NodeMaintenance }> {
  const once = async () => {
    const m = await mustRead(ref);
    const { patch, result } = decide(m);
    if (patch === undefined) return { result, after: m };
    const metadata = { ...patch.metadata, resourceVersion: m.metadata.resourceVersion };
    try {
      return { result, after: await rawPatch(ref, { ...patch, metadata }) };
    } catch (err) {
      // A lost race is decided again on a fresh read; anything else is the command's failure.
      if (err instanceof CommandFailed || isConflict(err)) throw err;
      throw failed(ref, 'writing', err);
    }
  };
  return retryOnConflict(once, { attempts: MAX_CONFLICTS, baseMs: 100, maxMs: 2_000 }).catch(
    (err: unknown) => {
      throw isConflict(err) ? failed(ref, 'writing', err) : err;
    },
  );
}
