import { setTimeout as sleep } from 'node:timers/promises';
import type { V1Node } from '@kubernetes/client-node';
import { Command } from 'commander';
import { UsageError } from '../errors.js';
import type { CliIO } from '../io.js';
import type * as KubeClient from '../kube/client.js';
import { nodeFacts, nodeHealth, type AgentConnection } from '../kube/node-facts.js';
import { outputOption } from '../output.js';
import { globToRegExp } from '../table.js';
import type * as Agents from './agents.js';
import type { CoordinatorRef } from './agents.js';
import { NODES_FORMATS, renderNodes, type ContextNode, type NodesFormat } from './render.js';

/** The modules that talk to clusters, loaded when the command runs (not for `--help`). */
type Loaded = typeof KubeClient & typeof Agents;
const load = async (): Promise<Loaded> => ({
  ...(await import('../kube/client.js')),
  ...(await import('./agents.js')),
});

interface NodesOptions {
  context: string[];
  allContexts?: boolean;
  kubeconfig?: string;
  output: NodesFormat;
  requestTimeout: string;
  coordinator?: string;
  token?: string;
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

interface ContextResult {
  readonly context: string;
  readonly nodes?: V1Node[];
  readonly error?: string;
  /** Connected agents by node; undefined when the coordinator could not be asked. */
  readonly agents?: Map<string, AgentConnection>;
  readonly agentsError?: string;
}

/** One cluster: its nodes and, at the same time, its coordinator's connected agents. */
async function askContext(
  context: string,
  opts: NodesOptions,
  ref: CoordinatorRef,
  timeoutMs: number,
  k: Loaded,
): Promise<ContextResult> {
  const kc = k.loadKubeConfig({ kubeconfig: opts.kubeconfig, context });
  const ac = new AbortController();
  const agents = withTimeout(
    'coordinator',
    timeoutMs,
    k.fetchAgents(kc, ref, ac.signal, opts.token),
  ).catch((err: unknown) => {
    ac.abort();
    return { error: err instanceof Error ? err.message : String(err) };
  });
  try {
    const nodes = await withTimeout(`context ${context}`, timeoutMs, k.listNodes(kc));
    const a = await agents;
    return 'error' in a ? { context, nodes, agentsError: a.error } : { context, nodes, ...a };
  } catch (err) {
    ac.abort();
    return { context, error: k.apiErrorText(err) };
  }
}

function contextsOf(opts: NodesOptions, k: Loaded): string[] {
  if (opts.allContexts === true && opts.context.length > 0) {
    throw new UsageError('--all-contexts', 'cannot be combined with --context');
  }
  const base = k.loadKubeConfig({ kubeconfig: opts.kubeconfig });
  return opts.allContexts === true
    ? base.getContexts().map((c) => c.name)
    : opts.context.length > 0
      ? opts.context
      : [base.getCurrentContext()];
}

function coordinatorOf(opts: NodesOptions, contexts: readonly string[], k: Loaded): CoordinatorRef {
  if (opts.coordinator === undefined) return k.DEFAULT_COORDINATOR;
  const ref = k.parseCoordinatorRef(opts.coordinator);
  if (ref.kind === 'url' && contexts.length > 1) {
    throw new UsageError('--coordinator', 'a URL reaches one cluster: ask one context with it');
  }
  // A token is one cluster's: sent to several clusters' coordinators, each could replay it.
  if (opts.token !== undefined && contexts.length > 1) {
    throw new UsageError('--token', "a token is one cluster's: ask one context with it");
  }
  return ref;
}

function rowsOf(r: ContextResult, match: RegExp | undefined): ContextNode[] {
  return (r.nodes ?? []).flatMap((n) => {
    const node = nodeFacts(n);
    if (match !== undefined && !match.test(node.name)) return [];
    const agentLink = r.agents === undefined ? undefined : (r.agents.get(node.name) ?? null);
    return [{ context: r.context, node, health: nodeHealth(n), agentLink }];
  });
}

async function runNodes(glob: string | undefined, opts: NodesOptions, io: CliIO): Promise<number> {
  const timeoutSec = Number(opts.requestTimeout.replace(/s$/, ''));
  if (!(timeoutSec > 0)) {
    throw new UsageError('--request-timeout', `"${opts.requestTimeout}" must be seconds, e.g. 10s`);
  }
  const k = await load();
  const contexts = contextsOf(opts, k);
  const ref = coordinatorOf(opts, contexts, k);
  const match = glob === undefined ? undefined : globToRegExp(glob);

  // Contexts are independent clusters: ask them all at once, and let one that is down cost
  // only its own timeout.
  const results = await Promise.all(
    contexts.map((context) => askContext(context, opts, ref, timeoutSec * 1000, k)),
  );
  const rows: ContextNode[] = [];
  let failed = 0;
  for (const r of results) {
    if (r.error !== undefined) {
      failed++;
      io.err(`warning: context ${r.context}: ${r.error}\n`);
      continue;
    }
    if (r.agentsError !== undefined) {
      io.err(`warning: context ${r.context}: agent connections unknown: ${r.agentsError}\n`);
    }
    rows.push(...rowsOf(r, match));
  }
  if (failed === contexts.length) return 1;
  if (rows.length === 0 && (opts.output === 'table' || opts.output === 'wide')) {
    io.err(glob === undefined ? 'no nodes\n' : `no node matches ${glob}\n`);
    return glob === undefined ? 0 : 1;
  }
  io.out(renderNodes(rows, opts.output, contexts.length > 1));
  return rows.length === 0 && glob !== undefined ? 1 : 0;
}

export function nodesCommand(io: CliIO, bin: string, setExit: (code: number) => void): Command {
  return new Command('nodes')
    .summary('list nodes: ready, downtime, GPUs and their health, maintenance, agent')
    .description(
      'List the nodes of one or more clusters (kubeconfig contexts): Ready, how long a node that ' +
        "is not Ready has been down, noma's unplanned-downtime taint, tier, GPU SKU, count and " +
        'health, whether they are schedulable, the maintenance that holds them and their phase ' +
        "in it, and whether their agent is connected (asked of the coordinator's leader; - when " +
        'it cannot be asked). With --all-contexts it answers "which cluster is this node in?".',
    )
    .argument('[name-glob]', 'only nodes whose name matches, e.g. "gpu-0*" (quote it)')
    .option('--context <name>', 'kubeconfig context to ask (repeatable)', collect, [])
    .option('-A, --all-contexts', 'ask every context of the kubeconfig')
    .option('--kubeconfig <file>', 'kubeconfig file (default: $KUBECONFIG or ~/.kube/config)')
    .addOption(outputOption(NODES_FORMATS))
    .option('--request-timeout <seconds>', 'give up on a cluster after this long', '10s')
    .option(
      '--coordinator <lease|url>',
      "where to ask which agents are connected: [namespace/]name of the coordinator's " +
        'leader-election Lease, reached through the API server (pod proxy), or the http URL of ' +
        'its HTTP port, e.g. a port-forward to the leader (default: noma-system/noma-coordinator)',
    )
    .option(
      '--token <token>',
      "bearer token for the coordinator's /agents, whose identity is bound to the ClusterRole " +
        'noma-metrics-reader (default: a 10-minute token minted for the ServiceAccount ' +
        "noma-metrics-reader in the Lease's namespace, or noma-system; needs create on its " +
        'serviceaccounts/token)',
    )
    .addHelpText(
      'after',
      `
Examples:
  # Nodes of the current context
  ${bin} nodes

  # Which cluster is gpu-07 in?
  ${bin} nodes --all-contexts gpu-07

  # More columns: Ready's reason, since when tainted, agent labels, link and heartbeat ages
  ${bin} nodes -o wide

  # Nodes named gpu-* in two clusters, as JSON
  ${bin} nodes --context prod-east --context prod-west 'gpu-*' -o json

  # Agent connections without the pod proxy: port-forward to the leader (the Lease's holder)
  kubectl -n noma-system port-forward pod/LEADER 8080 &
  ${bin} nodes --coordinator http://127.0.0.1:8080

  # A token of your own for /agents (its identity bound to the ClusterRole noma-metrics-reader)
  ${bin} nodes --token "$(kubectl create token -n noma-system noma-metrics-reader)"
`,
    )
    .action(async (glob: string | undefined, _opts: unknown, cmd: Command) => {
      setExit(await runNodes(glob, cmd.opts<NodesOptions>(), io));
    });
}
