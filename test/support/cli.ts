// Runs the noma CLI in-process, as main.ts does, and captures what it prints.
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { runCli } from '../../cli/program.js';

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export async function runNoma(
  args: readonly string[],
  opts: { cwd?: string; bin?: string; isTTY?: boolean; interrupted?: Promise<void> } = {},
): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(
    args,
    {
      out: (t) => (stdout += t),
      err: (t) => (stderr += t),
      cwd: opts.cwd ?? process.cwd(),
      isTTY: opts.isTTY ?? false,
      interrupted: opts.interrupted ?? new Promise<void>(() => undefined),
    },
    opts.bin,
  );
  return { code, stdout, stderr };
}

/**
 * Writes a kubeconfig (in a new temp dir) with the admin kubeconfig's cluster and user under
 * each name of `contexts`, plus the names of `unreachable` pointing at a port nobody listens on.
 */
export async function multiContextKubeconfig(
  adminKubeconfig: string,
  contexts: readonly string[],
  unreachable: readonly string[] = [],
): Promise<string> {
  const admin = parse(await readFile(adminKubeconfig, 'utf8')) as {
    clusters: { name: string }[];
    users: { name: string }[];
    'current-context': string;
    contexts: { name: string; context: { cluster: string; user: string } }[];
  };
  const current = admin.contexts.find((c) => c.name === admin['current-context']);
  if (current === undefined) throw new Error('admin kubeconfig has no current context');
  const config = {
    ...admin,
    clusters: [
      ...admin.clusters,
      {
        name: 'nowhere',
        cluster: { server: 'https://127.0.0.1:1', 'insecure-skip-tls-verify': true },
      },
    ],
    contexts: [
      ...contexts.map((name) => ({ name, context: current.context })),
      ...unreachable.map((name) => ({
        name,
        context: { cluster: 'nowhere', user: current.context.user },
      })),
    ],
    'current-context': contexts[0] ?? unreachable[0] ?? '',
  };
  const dir = await mkdtemp(join(tmpdir(), 'noma-kubeconfig-'));
  const file = join(dir, 'config');
  await writeFile(file, stringify(config), { mode: 0o600 });
  return file;
}
