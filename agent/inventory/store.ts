import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { GpuSchema, type Gpu } from '../discovery/nvidia-smi.js';

/**
 * The GPU inventory the agent last took as complete, in its state dir (a hostPath, so it
 * survives restarts and upgrades of the agent): a GPU that falls off the bus while the agent
 * restarts is still noticed as lost.
 */
const InventoryStateSchema = Type.Object({
  node: Type.String(),
  /** null: no complete inventory seen yet (a first run on a node with a broken device). */
  gpus: Type.Union([Type.Array(GpuSchema), Type.Null()]),
  /** Key of the loss last announced with a GPULost Event ('' none), so a restart is quiet. */
  announced: Type.String(),
  updatedAt: Type.String(),
});
export type InventoryState = Static<typeof InventoryStateSchema>;

const INVENTORY_FILE = 'inventory.json';

export interface RememberedInventory {
  readonly gpus: readonly Gpu[] | undefined;
  readonly announced: string;
}

/** What the state dir remembers for `node`; nothing when missing, unreadable or another node's. */
export async function readInventory(dir: string, node: string): Promise<RememberedInventory> {
  let data: unknown;
  try {
    data = JSON.parse(await readFile(join(dir, INVENTORY_FILE), 'utf8'));
  } catch {
    return { gpus: undefined, announced: '' };
  }
  if (!Value.Check(InventoryStateSchema, data) || data.node !== node) {
    return { gpus: undefined, announced: '' };
  }
  return { gpus: data.gpus ?? undefined, announced: data.announced };
}

/** Writes atomically (temp file + rename), so a crash never leaves half a file. */
export async function writeInventory(
  dir: string,
  node: string,
  remembered: RememberedInventory,
): Promise<void> {
  const state: InventoryState = {
    node,
    gpus: remembered.gpus === undefined ? null : [...remembered.gpus],
    announced: remembered.announced,
    updatedAt: new Date().toISOString(),
  };
  const tmp = join(dir, `${INVENTORY_FILE}.${process.pid}.tmp`);
  await writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`);
  await rename(tmp, join(dir, INVENTORY_FILE));
}
