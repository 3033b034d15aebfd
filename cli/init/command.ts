import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import type { KubeConfig } from '@kubernetes/client-node';
import { UsageError, UsageErrors } from '../errors.js';
import type { CliIO } from '../io.js';
import { SELECTED_FOR_LABEL, type NodeFacts } from '../kube/node-facts.js';
import { pickNodes } from '../select/pick-nodes.js';
import { renderRanking } from '../select/render.js';
import { buildManifest, type InitAction, type InitFlags, type InitPlan } from './build-manifest.js';
import { previewNodeDrain, renderDrainPreview } from './drain-preview.js';
import { renderPreview } from './preview.js';
import { renderManifest } from './render.js';

interface InitOptions extends InitFlags {
  output?: string;
  preview?: boolean;
  dryRun?: boolean;
  context?: string;
  kubeconfig?: string;
  image?: string;
  timeout?: string;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** The flags every form of `init` takes. */
function addInitOptions(cmd: Command): Command {
  return cmd
    .option('--name <name>', 'NodeMaintenance name, also spec.operationName (required)')
    .option('--ticket <id>', 'ticket that authorizes the maintenance, e.g. ENG-1234 (required)')
    .option('--nodes <a,b>', 'target these nodes (kubernetes.io/hostname in (a,b))')
    .option(
      '-l, --selector <selector>',
      "target nodes by label selector, e.g. 'gpu.h100=true' (with --node-count: pick among them)",
    )
    .option(
      '--node-count <n>',
      'pick the N most available GPU nodes on the cluster and label them noma.dev/selected-for=<name>',
    )
    .option('--force-drain', 'after --drain-timeout, delete pods that still block (bypasses PDBs)')
    .option('--drain-timeout <duration>', 'how long a drain may take, e.g. 30m, 1h30m')
    .option(
      '--skip-wait-for-delete-timeout <duration>',
      'on a node that is not Ready, a pod deleted longer ago than this counts as gone (default 1m)',
    )
    .option(
      '--drain-non-gpu-pods',
      'evict every pod at the start, not only GPU pods (Reboot and DeleteNode drain every pod anyway)',
    )
    .option(
      '--delete-emptydir-data',
      'evict pods with emptyDir data on disk (it is lost); Memory emptyDirs never block',
    )
    .option('--evict-unmanaged-pods', 'evict pods that no controller manages (none recreates them)')
    .option('--max-unavailable <n|percent>', 'nodes unavailable at once, e.g. 1 or 25%')
    .option(
      '--max-failed-nodes <n|percent>',
      'failed nodes after which the maintenance halts, e.g. 1 or 10% (default 1)',
    )
    .option('--allow-control-plane', 'let the selector match control-plane nodes')
    .option('--taint <key=value:Effect>', 'extra taint while in maintenance (repeatable)', collect)
    .option('--complete', 'append Complete: return the nodes to service at the end')
    .option(
      '-n, --namespace <namespace>',
      'namespace of the NodeMaintenance (default: the context’s)',
    )
    .option('-o, --output <file>', 'write the manifest to this file instead of stdout')
    .option(
      '--preview',
      'show the nodes the selector matches now and, per node, the pods the drain would evict ' +
        'or be blocked by and the PodDisruptionBudgets involved (reads the cluster)',
    )
    .option('--dry-run', 'with --node-count: show the choice, label nothing')
    .option('--context <name>', 'kubeconfig context for --node-count and --preview')
    .option('--kubeconfig <file>', 'kubeconfig file (default: $KUBECONFIG or ~/.kube/config)');
}

function addActionOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option('--image <image>', 'run it in a pod with this image (default: on the host)'),
    )
    .option('--timeout <duration>', 'time limit of the step, e.g. 45m (default 1h)');
}

async function chooseNodes(
  kc: KubeConfig,
  plan: InitPlan,
  count: number,
  pool: string | undefined,
  opts: InitOptions,
  io: CliIO,
): Promise<NodeFacts[]> {
  const { fetchNodeFacts, listNodes, setNodeLabel } = await import('../kube/client.js');
  const name = plan.manifest.metadata.name ?? '';
  const facts = await fetchNodeFacts(kc, pool);
  const pick = pickNodes(facts, count, name);
  io.err(renderRanking(pick.ranking, pick.ok ? count : 0));
  if (!pick.ok) throw new UsageError('--node-count', pick.message);
  const chosen = new Set(pick.chosen.map((n) => n.name));
  const labeled = await listNodes(kc, `${SELECTED_FOR_LABEL}=${name}`);
  const stale = labeled.map((n) => n.metadata?.name ?? '').filter((n) => !chosen.has(n));
  if (opts.dryRun === true) {
    io.err(
      `dry run: nothing labeled; without --dry-run ${SELECTED_FOR_LABEL}=${name} would go on ` +
        `${[...chosen].join(', ')}${stale.length === 0 ? '' : ` and come off ${stale.join(', ')}`}\n`,
    );
    return [...pick.chosen];
  }
  // Only the picked nodes may carry the label, or the manifest would select more than N.
  for (const n of stale) await setNodeLabel(kc, n, SELECTED_FOR_LABEL, null);
  for (const n of pick.chosen) await setNodeLabel(kc, n.name, SELECTED_FOR_LABEL, name);
  const removed = stale.length === 0 ? '' : `; removed it from ${stale.join(', ')}`;
  io.err(`labeled ${[...chosen].join(', ')} with ${SELECTED_FOR_LABEL}=${name}${removed}\n`);
  return [...pick.chosen];
}

/** `--preview`: the matched nodes, then what the drains would do on each; reads only. */
async function preview(
  kc: KubeConfig,
  plan: InitPlan,
  chosen: NodeFacts[] | undefined,
  io: CliIO,
): Promise<void> {
  const { fetchDrainFacts, fetchNodeFacts } = await import('../kube/client.js');
  const { spec } = plan.manifest;
  const matched = chosen ?? (await fetchNodeFacts(kc, spec.nodeSelector));
  const expected = plan.selection.kind === 'nodes' ? plan.selection.nodes : [];
  io.err(renderPreview(spec.nodeSelector, matched, expected, spec.options));
  const names = matched.map((n) => n.name);
  const facts = await fetchDrainFacts(kc, names);
  const ctx = { now: new Date(), daemonSetExists: facts.daemonSetExists };
  const previews = names.map((node) =>
    previewNodeDrain(node, { spec, pods: facts.podsByNode.get(node) ?? [], pdbs: facts.pdbs, ctx }),
  );
  io.err(renderDrainPreview(previews));
  if (facts.pdbError !== undefined) {
    io.err(`warning: cannot list PodDisruptionBudgets (${facts.pdbError}): none is shown\n`);
  }
}

async function runInit(
  action: InitAction | undefined,
  opts: InitOptions,
  io: CliIO,
): Promise<void> {
  const result = buildManifest(opts, action);
  if (!result.ok) throw new UsageErrors(result.errors);
  const plan = result.value;
  const { selection } = plan;
  if (opts.dryRun === true && selection.kind !== 'count') {
    throw new UsageError(
      '--dry-run',
      'only applies with --node-count (init never changes the cluster otherwise)',
    );
  }
  const needsCluster = selection.kind === 'count' || opts.preview === true;
  if (needsCluster) {
    // Loaded here: the Kubernetes client is for the cluster, and most runs of init need none.
    const { loadKubeConfig } = await import('../kube/client.js');
    const kc = loadKubeConfig(opts);
    const chosen =
      selection.kind === 'count'
        ? await chooseNodes(kc, plan, selection.count, selection.pool, opts, io)
        : undefined;
    if (opts.preview === true) await preview(kc, plan, chosen, io);
  }
  const text = renderManifest(plan.manifest);
  if (opts.output === undefined) {
    io.out(text);
  } else {
    writeFileSync(resolve(io.cwd, opts.output), text);
    io.err(
      `wrote ${opts.output}; apply it with: kubectl --context <cluster> apply -f ${opts.output}\n`,
    );
  }
}

function readScript(file: string, io: CliIO): string {
  try {
    return readFileSync(resolve(io.cwd, file), 'utf8');
  } catch (err) {
    throw new UsageError('<file>', `cannot read ${file}: ${(err as Error).message}`);
  }
}

const EXAMPLES = (bin: string) => `
Examples:
  # Run a script on two nodes, in a pod with the tools image
  ${bin} init script ./maintenance.sh --name gpu-maintenance --ticket ENG-1234 \\
    --nodes gpu-01,gpu-02 --image tools:latest -o maintenance.yaml

  # Reboot the H100 nodes one at a time, then return them to service
  ${bin} init reboot --name reboot-h100 --ticket ENG-1234 -l gpu.h100=true \\
    --max-unavailable 1 --complete -o maintenance.yaml

  # First see what the drain would evict, what blocks it and which PDBs are involved
  ${bin} init reboot --name reboot-h100 --ticket ENG-1234 -l gpu.h100=true --preview --context prod-east

  # Remove two nodes from the cluster
  ${bin} init delete-node --name remove-gpu --ticket ENG-1234 --nodes gpu-01,gpu-02

  # Free the 4 most available GPU nodes (labels them; --dry-run only shows the choice)
  ${bin} init --name free-4 --ticket ENG-1234 --node-count 4 --context prod-east

  # Several steps: write a template, then edit spec.actions
  ${bin} init --name multi-step --ticket ENG-1234 -l gpu.h100=true -o maintenance.yaml

init only writes YAML; apply it after review:
  kubectl --context <cluster> apply -f maintenance.yaml
`;

export function initCommand(io: CliIO, bin: string): Command {
  const init = addInitOptions(new Command('init'))
    .summary('write a NodeMaintenance manifest (never applies it)')
    .description(
      'Write a NodeMaintenance manifest to stdout or --output. Without a subcommand it writes a ' +
        'template with an empty actions list to edit by hand. init never changes a ' +
        'NodeMaintenance; it reads the cluster only for --node-count and --preview, and writes ' +
        'to it only to label the nodes --node-count picks.',
    )
    .enablePositionalOptions()
    .addHelpText('after', EXAMPLES(bin))
    .action(async (_opts: unknown, cmd: Command) => {
      await runInit(undefined, cmd.opts<InitOptions>(), io);
    });

  addActionOptions(addInitOptions(init.command('script')))
    .argument('<file>', 'script to run (bash) on every node')
    .argument('[args...]', 'arguments for the script, after --')
    .summary('cordon, drain, run a script')
    .description('Cordon and drain the nodes, then run a bash script on each.')
    .addHelpText(
      'after',
      `\nExample:\n  ${bin} init script ./fix.sh --name fix-nccl --ticket ENG-1234 --nodes gpu-01 -- --verbose\n`,
    )
    .action(async (file: string, args: string[], _opts: unknown, cmd: Command) => {
      const opts = cmd.opts<InitOptions>();
      const text = readScript(file, io);
      await runInit({ type: 'Script', file, text, args, ...actionExtras(opts) }, opts, io);
    });

  addActionOptions(addInitOptions(init.command('run')))
    .argument('<command...>', 'program and arguments, after -- (run without a shell)')
    .summary('cordon, drain, run a command')
    .description('Cordon and drain the nodes, then run a command on each (no shell).')
    .addHelpText(
      'after',
      `\nExample:\n  ${bin} init run --name smi --ticket ENG-1234 --nodes gpu-01 -- nvidia-smi -q\n`,
    )
    .action(async (command: string[], _opts: unknown, cmd: Command) => {
      const opts = cmd.opts<InitOptions>();
      await runInit({ type: 'Run', command, ...actionExtras(opts) }, opts, io);
    });

  addInitOptions(init.command('reboot'))
    .summary('cordon, drain, reboot')
    .description(
      'Cordon and drain the nodes, then reboot each and wait until it is back (new boot ID, ' +
        'Ready, agent reconnected). The nodes stay cordoned unless --complete is given.',
    )
    .addHelpText(
      'after',
      `\nExamples:\n  ${bin} init reboot --name reboot-gpu --ticket ENG-1234 --nodes gpu-01,gpu-02 --complete\n` +
        `  ${bin} init reboot --name reboot-h100 --ticket ENG-1234 -l gpu.h100=true --max-unavailable 25% -o reboot.yaml\n\n` +
        `Apply after review:\n  kubectl --context <cluster> apply -f reboot.yaml\n`,
    )
    .action(async (_opts: unknown, cmd: Command) => {
      await runInit({ type: 'Reboot' }, cmd.opts<InitOptions>(), io);
    });

  addInitOptions(init.command('delete-node'))
    .summary('cordon, drain, delete the Node objects')
    .description(
      'Cordon and drain the nodes, then delete their Node objects (remove them from the cluster).',
    )
    .addHelpText(
      'after',
      `\nExample:\n  ${bin} init delete-node --name remove-gpu --ticket ENG-1234 --nodes gpu-01,gpu-02\n`,
    )
    .action(async (_opts: unknown, cmd: Command) => {
      await runInit({ type: 'DeleteNode' }, cmd.opts<InitOptions>(), io);
    });

  return init;
}

function actionExtras(opts: InitOptions): { image?: string; timeout?: string } {
  return {
    ...(opts.image === undefined ? {} : { image: opts.image }),
    ...(opts.timeout === undefined ? {} : { timeout: opts.timeout }),
  };
}
