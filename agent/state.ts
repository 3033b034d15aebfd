import { mkdir, readFile, rename, writeFile, access, constants } from 'node:fs/promises';
import { join } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

/**
 * What the agent remembers across restarts in its state dir (a hostPath). The Node annotation
 * is the primary record of owned labels; this copy lets a restarted agent still remove labels
 * it owned when someone deleted the annotation.
 */
const LabelStateSchema = Type.Object({
  node: Type.String(),
  owned: Type.Array(Type.String()),
  updatedAt: Type.String(),
});
export type LabelState = Static<typeof LabelStateSchema>;

const LABEL_STATE_FILE = 'labels.json';

/** Creates the state dir if needed and checks that we can write there. */
export async function prepareStateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await access(dir, constants.W_OK);
}

/** The keys owned on `node` according to the state dir; empty when unknown or unreadable. */
export async function readOwnedLabels(dir: string, node: string): Promise<string[]> {
  let data: unknown;
  try {
    data = JSON.parse(await readFile(join(dir, LABEL_STATE_FILE), 'utf8'));
  } catch {
    return [];
  }
  // A state dir carried over from another node name says nothing about this one.
  return Value.Check(LabelStateSchema, data) && data.node === node ? data.owned : [];
}

/** Writes atomically (temp file + rename), so a crash never leaves half a file. */
export async function writeOwnedLabels(
  dir: string,
  node: string,
  owned: readonly string[],
): Promise<void> {
  const state: LabelState = { node, owned: [...owned], updatedAt: new Date().toISOString() };
  const tmp = join(dir, `${LABEL_STATE_FILE}.${process.pid}.tmp`);
  await writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`);
  await rename(tmp, join(dir, LABEL_STATE_FILE));
}
