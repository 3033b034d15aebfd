// The suite runs the agent and the coordinator as JavaScript compiled from the working tree once
// per run (tsc, as `npm run build` does, into the suite's own directory: dist/ is left alone),
// unless CHAOS_FROM_SOURCE=1 (tsx, as the integration tests do). Type errors do not stop the
// emit: the suite tests what the tree does, and the typecheck is the linter's business.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from '../cluster/cluster.js';

const run = promisify(execFile);

/** Compiles into `dir` and returns it; '' when the suite runs from source. */
export async function buildForChaos(dir: string): Promise<string> {
  if (process.env['CHAOS_FROM_SOURCE'] === '1') return '';
  // Another tree (e.g. `git archive HEAD | tar -x -C /tmp/head`): the table against other
  // code, with this tree's harness.
  const other = process.env['CHAOS_TREE'];
  const tree = resolve(other ?? ROOT);
  // Inside the other tree, so that its own node_modules serve its imports.
  if (other !== undefined) dir = join(tree, '.chaos-build');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  await run(process.execPath, [tsc, '-p', join(tree, 'tsconfig.build.json'), '--outDir', dir], {
    cwd: tree,
    maxBuffer: 16 * 1024 * 1024,
  }).catch((err: unknown) => {
    // tsc exits 2 on type errors after emitting; only a missing emit is fatal.
    if ((err as { code?: number }).code !== 2) throw err;
  });
  if (!existsSync(join(dir, 'coordinator', 'main.js')))
    throw new Error(`tsc emitted nothing in ${dir}`);
  // shared/version.ts finds package.json next to the build, and ESM needs its "type".
  await copyFile(join(tree, 'package.json'), join(dir, 'package.json'));
  return dir;
}
