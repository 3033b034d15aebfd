import { setTimeout as sleep } from 'node:timers/promises';
import { Command, Option } from 'commander';
import { UsageError } from '../errors.js';
import type { CliIO } from '../io.js';
import { apiErrorText, listNodes, loadKubeConfig } from '../kube/client.js';
import { nodeFacts } from '../kube/node-facts.js';
import { globToRegExp } from '../table.js';
import { renderNodes, type ContextNode, type NodesFormat } from './render.js';

interface NodesOptions {
  context: string[];
  allContexts?: boolean;
  kubeconfig?: string;
  output: NodesFormat;
  requestTimeout: string;
}

const collect = (value: string, previous: string[]) => [...previous, value];

async function withTimeout<T>(what: string, ms: number, work: Promise<T>): Promise<T> {
  const ac = new AbortController();
  const timer = sleep(ms, undefined, { signal: ac.signal }).then(() => {
    throw new Error(`${what}: no answer within ${ms / 1000}s`);
  });
  try {
    return await Promise.race([work, timer]);
  } finally {
    ac.abort();
    timer.catch(() => undefined);
  }
}

async function runNodes(glob: string | undefined, opts: NodesOptions, io: CliIO): Promise<number> {
  if (opts.allContexts === true && opts.context.length > 0) {
    throw new UsageError('--all-contexts', 'cannot be combined with --context');
  }
  const timeoutSec = Number(opts.requestTimeout.replace(/s$/, ''));
  if (!(timeoutSec > 0)) {
    throw new UsageError('--request-timeout', `"${opts.requestTimeout}" must be seconds, e.g. 10s`);
  }
  const base = loadKubeConfig({ kubeconfig: opts.kubeconfig });
  const contexts =
    opts.allContexts === true
      ? base.getContexts().map((c) => c.name)
      : opts.context.length > 0
        ? opts.context
        : [base.getCurrentContext()];
  const match = glob === undefined ? undefined : globToRegExp(glob);

  // Contexts are independent clusters: ask them all at once, and let one that is down cost
  // only its own timeout.
  const results = await Promise.all(
    contexts.map(async (context) => {
      try {
        const kc = loadKubeConfig({ kubeconfig: opts.kubeconfig, context });
        const nodes = await withTimeout(`context ${context}`, timeoutSec * 1000, listNodes(kc));
        return { context, nodes };
      } catch (err) {
        if (err instanceof UsageError) throw err;
        return { context, error: apiErrorText(err) };
      }
    }),
  );
  const rows: ContextNode[] = [];
  let failed = 0;
  for (const r of results) {
    if ('error' in r) {
      failed++;
      io.err(`warning: context ${r.context}: ${r.error ?? ''}\n`);
      continue;
    }
    for (const n of r.nodes) {
      const node = nodeFacts(n);
      if (match === undefined || match.test(node.name)) rows.push({ context: r.context, node });
    }
  }
  if (failed === contexts.length) return 1;
  if (rows.length === 0 && opts.output === 'table') {
    io.err(glob === undefined ? 'no nodes\n' : `no node matches ${glob}\n`);
    return glob === undefined ? 0 : 1;
  }
  io.out(renderNodes(rows, opts.output, contexts.length > 1));
  return rows.length === 0 && glob !== undefined ? 1 : 0;
}

export function nodesCommand(io: CliIO, bin: string, setExit: (code: number) => void): Command {
  return new Command('nodes')
    .summary('list nodes: tier, GPUs, schedulable, maintenance, agent')
    .description(
      'List the nodes of one or more clusters (kubeconfig contexts) with their tier, GPU SKU and ' +
        'count, whether they are schedulable or in maintenance, and what is known of their agent. ' +
        'With --all-contexts it answers "which cluster is this node in?".',
    )
    .argument('[name-glob]', 'only nodes whose name matches, e.g. "gpu-0*" (quote it)')
    .option('--context <name>', 'kubeconfig context to ask (repeatable)', collect, [])
    .option('-A, --all-contexts', 'ask every context of the kubeconfig')
    .option('--kubeconfig <file>', 'kubeconfig file (default: $KUBECONFIG or ~/.kube/config)')
    .addOption(
      new Option('-o, --output <format>', 'output format')
        .choices(['table', 'json', 'yaml'])
        .default('table'),
    )
    .option('--request-timeout <seconds>', 'give up on a cluster after this long', '10s')
    .addHelpText(
      'after',
      `
Examples:
  # Nodes of the current context
  ${bin} nodes

  # Which cluster is gpu-07 in?
  ${bin} nodes --all-contexts gpu-07

  # Nodes named gpu-* in two clusters, as JSON
  ${bin} nodes --context prod-east --context prod-west 'gpu-*' -o json
`,
    )
    .action(async (glob: string | undefined, _opts: unknown, cmd: Command) => {
      setExit(await runNodes(glob, cmd.opts<NodesOptions>(), io));
    });
}
