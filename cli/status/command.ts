import { Command } from 'commander';
import type { KubeConfig } from '@kubernetes/client-node';
import { parseDuration } from '../../shared/duration.js';
import { UsageError } from '../errors.js';
import type { CliIO } from '../io.js';
import {
  isDocumentFormat,
  outputOption,
  renderDocument,
  renderStreamDocument,
  type DocumentFormat,
} from '../output.js';
import { follow, type Change, type FollowHooks, type WatchSource } from './follow.js';
import type { Scope } from './kube-source.js';
import { checkMaintenances, renderStatus, statusDocument, withoutManagedFields } from './render.js';

const FORMATS = ['table', 'json', 'yaml'] as const;
type StatusFormat = (typeof FORMATS)[number];

interface StatusOptions {
  namespace?: string;
  allNamespaces?: boolean;
  watch?: boolean;
  interval: string;
  output: StatusFormat;
  context?: string;
  kubeconfig?: string;
}

/** What `runStatus` needs of the cluster, loaded with the Kubernetes client when it runs. */
interface Cluster {
  readonly source: WatchSource;
  readonly scope: Scope;
  readonly errorText: (err: unknown) => string;
}

/** The refresh interval in ms, after the checks that need no cluster. */
function checkOptions(name: string | undefined, opts: StatusOptions): number {
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
  return interval;
}

/** The Kubernetes client is loaded here, not at start: `noma init` and `--help` need none. */
async function connect(name: string | undefined, opts: StatusOptions): Promise<Cluster> {
  const [client, { maintenanceSource }] = await Promise.all([
    import('../kube/client.js'),
    import('./kube-source.js'),
  ]);
  const kc: KubeConfig = client.loadKubeConfig(opts);
  const namespace =
    opts.allNamespaces === true ? undefined : (opts.namespace ?? client.contextNamespace(kc));
  const scope = { namespace, name };
  return { source: maintenanceSource(kc, scope), scope, errorText: client.apiErrorText };
}

const whatOf = (scope: Scope) =>
  scope.name === undefined ? 'NodeMaintenances' : `NodeMaintenance ${scope.name}`;

async function showOnce(cluster: Cluster, format: StatusFormat, io: CliIO): Promise<number> {
  let items: readonly unknown[];
  try {
    ({ items } = await cluster.source.list());
  } catch (err) {
    io.err(`error: reading ${whatOf(cluster.scope)}: ${cluster.errorText(err)}\n`);
    return 1;
  }
  const checked = checkMaintenances(items);
  if (format === 'table') {
    io.out(
      checked.problems.map((p) => `${p}\n`).join('') + renderStatus(checked.items, new Date()),
    );
  } else {
    io.err(checked.problems.map((p) => `${p}\n`).join(''));
    io.out(renderDocument(statusDocument(checked.items, cluster.scope.name !== undefined), format));
  }
  return 0;
}

/** How `--watch` shows what happens: each change, each failure, and the clock's ticks. */
interface WatchView extends FollowHooks {
  /** The terminal view is redrawn every --interval, so that its ages move on. */
  readonly tick?: () => void;
}

/** The table, redrawn in place on a terminal; piped, each new state once (a log of changes). */
function tableView(io: CliIO, interval: string, errorText: (err: unknown) => string): WatchView {
  let text = '';
  let state = '';
  let trouble = '';
  let objects: ReadonlyMap<string, unknown> = new Map();
  const compute = (): void => {
    const { items, problems } = checkMaintenances(objects.values());
    text = problems.map((p) => `${p}\n`).join('') + renderStatus(items, new Date());
  };
  const redraw = (): void => {
    io.out(
      `\x1b[H\x1b[2J${new Date().toISOString()}  (watching, redrawn every ${interval}; Ctrl-C to stop)\n` +
        `${trouble}\n${text}`,
    );
  };
  return {
    onChange: (next: ReadonlyMap<string, unknown>, changes: readonly Change[]) => {
      objects = next;
      trouble = '';
      compute();
      if (io.isTTY) {
        redraw();
        return;
      }
      // The ages in the text change with time, not with the maintenances: not a new state.
      const now = JSON.stringify([...next.values()]);
      if (now === state) return;
      state = now;
      const gone = changes.filter((c) => c.type === 'DELETED').map((c) => `deleted ${c.key}\n`);
      io.out(`--- ${new Date().toISOString()}\n${gone.join('')}${text}`);
    },
    onTrouble: (err: unknown, delayMs: number) => {
      trouble = `error: watching: ${errorText(err)} (trying again in ${(delayMs / 1000).toFixed(1)}s)\n`;
      if (io.isTTY) redraw();
      else io.err(trouble);
    },
    ...(io.isTTY
      ? {
          tick: () => {
            compute();
            redraw();
          },
        }
      : {}),
  };
}

/** `-o json|yaml`: one watch event (`{type, object}`) per change, as kubectl's watch events. */
function streamView(io: CliIO, format: DocumentFormat, errorText: (err: unknown) => string) {
  return {
    onChange: (_: ReadonlyMap<string, unknown>, changes: readonly Change[]) => {
      for (const c of changes) {
        io.out(
          renderStreamDocument({ type: c.type, object: withoutManagedFields(c.object) }, format),
        );
      }
    },
    onTrouble: (err: unknown, delayMs: number) => {
      io.err(
        `error: watching: ${errorText(err)} (trying again in ${(delayMs / 1000).toFixed(1)}s)\n`,
      );
    },
  } satisfies WatchView;
}

async function watchStatus(
  cluster: Cluster,
  opts: StatusOptions,
  intervalMs: number,
  io: CliIO,
): Promise<number> {
  const view: WatchView = isDocumentFormat(opts.output)
    ? streamView(io, opts.output, cluster.errorText)
    : tableView(io, opts.interval, cluster.errorText);
  const ac = new AbortController();
  void io.interrupted.then(() => {
    ac.abort();
  });
  const ticker = view.tick === undefined ? undefined : setInterval(view.tick, intervalMs);
  try {
    const end = await follow(cluster.source, view, ac.signal, cluster.scope.name !== undefined);
    if (end === 'deleted') {
      const deleted = `${cluster.scope.namespace ?? ''}/${cluster.scope.name ?? ''} was deleted\n`;
      if (opts.output === 'table') io.out(deleted);
      else io.err(deleted);
    }
    return 0;
  } catch (err) {
    io.err(`error: reading ${whatOf(cluster.scope)}: ${cluster.errorText(err)}\n`);
    return 1;
  } finally {
    clearInterval(ticker);
  }
}

async function runStatus(
  name: string | undefined,
  opts: StatusOptions,
  io: CliIO,
): Promise<number> {
  const intervalMs = checkOptions(name, opts);
  const cluster = await connect(name, opts);
  return opts.watch === true
    ? watchStatus(cluster, opts, intervalMs, io)
    : showOnce(cluster, opts.output, io);
}

export function statusCommand(io: CliIO, bin: string, setExit: (code: number) => void): Command {
  return new Command('status')
    .summary('show maintenances and per-node progress')
    .description(
      'Show NodeMaintenances with per-node progress: phase, current action, drain progress, ' +
        'the PodDisruptionBudget or pod that blocks a drain, and the last exit code. ' +
        'With --watch it follows a watch of the maintenances: the view changes when they do.',
    )
    .argument('[name]', 'one NodeMaintenance (default: all in the namespace)')
    .option('-n, --namespace <namespace>', 'namespace (default: the context’s)')
    .option('-A, --all-namespaces', 'maintenances of every namespace')
    .option('-w, --watch', 'follow changes until Ctrl-C (or until the named one is deleted)')
    .option('--interval <duration>', "how often --watch redraws a terminal's view (ages)", '2s')
    .addOption(outputOption(FORMATS))
    .option('--context <name>', 'kubeconfig context')
    .option('--kubeconfig <file>', 'kubeconfig file (default: $KUBECONFIG or ~/.kube/config)')
    .addHelpText(
      'after',
      `
Output (-o):
  table  the maintenances and a row per node (default)
  json   a named maintenance: the NodeMaintenance object; else a List of them
  yaml   the same, as YAML
  With --watch, json and yaml print one watch event per change: {type: ADDED|MODIFIED|DELETED,
  object}, JSON one per line, YAML separated by ---.

Examples:
  ${bin} status -A
  ${bin} status reboot-gpu -n default --watch
  ${bin} status --context prod-east -A -w --interval 5s
  ${bin} status reboot-gpu -o json | jq '.status.nodes[] | {name, phase}'
`,
    )
    .action(async (name: string | undefined, _opts: unknown, cmd: Command) => {
      setExit(await runStatus(name, cmd.opts<StatusOptions>(), io));
    });
}
