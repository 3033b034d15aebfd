import { setTimeout as sleep } from 'node:timers/promises';
import { Command } from 'commander';
import type { KubeConfig } from '@kubernetes/client-node';
import {
  GROUP,
  PLURAL,
  VERSION,
  formatErrors,
  validateNodeMaintenance,
  type NodeMaintenance,
} from '../../shared/api/index.js';
import { parseDuration } from '../../shared/duration.js';
import { UsageError } from '../errors.js';
import type { CliIO } from '../io.js';
import { apiErrorText, contextNamespace, customObjects, loadKubeConfig } from '../kube/client.js';
import { renderStatus } from './render.js';

interface StatusOptions {
  namespace?: string;
  allNamespaces?: boolean;
  watch?: boolean;
  interval: string;
  context?: string;
  kubeconfig?: string;
}

interface Fetched {
  readonly items: NodeMaintenance[];
  readonly problems: string[];
}

/** Reads the maintenances and checks each against the schema once, here at the boundary. */
async function fetchMaintenances(
  kc: KubeConfig,
  name: string | undefined,
  namespace: string | undefined,
): Promise<Fetched> {
  const api = customObjects(kc);
  const base = { group: GROUP, version: VERSION, plural: PLURAL };
  let raw: unknown[];
  if (name !== undefined) {
    const one: unknown = await api.getNamespacedCustomObject({
      ...base,
      namespace: namespace ?? 'default',
      name,
    });
    raw = [one];
  } else {
    const list: unknown =
      namespace === undefined
        ? await api.listClusterCustomObject(base)
        : await api.listNamespacedCustomObject({ ...base, namespace });
    const items = (list as { items?: unknown }).items;
    raw = Array.isArray(items) ? (items as unknown[]) : [];
  }
  const result: Fetched = { items: [], problems: [] };
  for (const obj of raw) {
    const valid = validateNodeMaintenance(obj);
    if (valid.ok) result.items.push(valid.value);
    else {
      const meta = (obj as { metadata?: { namespace?: string; name?: string } }).metadata;
      result.problems.push(
        `warning: ${meta?.namespace ?? '?'}/${meta?.name ?? '?'} does not match the NodeMaintenance schema (${formatErrors(valid.errors)})`,
      );
    }
  }
  return result;
}

async function runStatus(
  name: string | undefined,
  opts: StatusOptions,
  io: CliIO,
): Promise<number> {
  if (opts.allNamespaces === true && opts.namespace !== undefined) {
    throw new UsageError('--all-namespaces', 'cannot be combined with --namespace');
  }
  if (opts.allNamespaces === true && name !== undefined) {
    throw new UsageError('--all-namespaces', 'a maintenance is named within one namespace; use -n');
  }
  const interval = parseDuration(opts.interval) ?? NaN;
  if (!(interval >= 100)) {
    throw new UsageError(
      '--interval',
      `"${opts.interval}" must be a duration of at least 100ms, e.g. 2s`,
    );
  }
  const kc = loadKubeConfig(opts);
  const namespace =
    opts.allNamespaces === true ? undefined : (opts.namespace ?? contextNamespace(kc));

  // `state` identifies what was read, without the ages that change with every refresh.
  const once = async (): Promise<{ text: string; ok: boolean; state: string }> => {
    try {
      const { items, problems } = await fetchMaintenances(kc, name, namespace);
      const text = problems.map((p) => `${p}\n`).join('') + renderStatus(items, new Date());
      return { text, ok: true, state: JSON.stringify([items, problems]) };
    } catch (err) {
      const what = name === undefined ? 'NodeMaintenances' : `NodeMaintenance ${name}`;
      const text = `error: reading ${what}: ${apiErrorText(err)}\n`;
      return { text, ok: false, state: text };
    }
  };

  if (opts.watch !== true) {
    const { text, ok } = await once();
    if (ok) io.out(text);
    else io.err(text);
    return ok ? 0 : 1;
  }
  const stop = Symbol('stop');
  const stopped = io.interrupted.then(() => stop);
  let previous = '';
  for (;;) {
    const { text, state } = await once();
    if (io.isTTY) {
      // Redraw in place: home, clear screen, then the view with the time it was taken.
      io.out(
        `\x1b[H\x1b[2J${new Date().toISOString()}  (every ${opts.interval}, Ctrl-C to stop)\n\n${text}`,
      );
    } else if (state !== previous) {
      // Piped: print each new state once, so the output is a log of changes.
      io.out(`--- ${new Date().toISOString()}\n${text}`);
    }
    previous = state;
    if ((await Promise.race([sleep(interval), stopped])) === stop) return 0;
  }
}

export function statusCommand(io: CliIO, bin: string, setExit: (code: number) => void): Command {
  return new Command('status')
    .summary('show maintenances and per-node progress')
    .description(
      'Show NodeMaintenances with per-node progress: phase, current action, drain progress, ' +
        'the PodDisruptionBudget or pod that blocks a drain, and the last exit code.',
    )
    .argument('[name]', 'one NodeMaintenance (default: all in the namespace)')
    .option('-n, --namespace <namespace>', 'namespace (default: the context’s)')
    .option('-A, --all-namespaces', 'maintenances of every namespace')
    .option('-w, --watch', 'keep the view up to date until Ctrl-C')
    .option('--interval <duration>', 'refresh interval of --watch', '2s')
    .option('--context <name>', 'kubeconfig context')
    .option('--kubeconfig <file>', 'kubeconfig file (default: $KUBECONFIG or ~/.kube/config)')
    .addHelpText(
      'after',
      `
Examples:
  ${bin} status -A
  ${bin} status reboot-gpu -n default --watch
  ${bin} status --context prod-east -A -w --interval 5s
`,
    )
    .action(async (name: string | undefined, _opts: unknown, cmd: Command) => {
      setExit(await runStatus(name, cmd.opts<StatusOptions>(), io));
    });
}
