// `noma nodes accept-inventory NODE`: an operator who really removed a GPU (or gave up on a
// broken one) tells the node's agent to take the GPUs that answer now as its inventory. It
// writes one Node annotation, so plain kubectl can do the same; the agent acts on it, labels
// the new count, marks the node healthy and removes the annotation.
import { setTimeout as sleep } from 'node:timers/promises';
import type { CoreV1Api, V1Node } from '@kubernetes/client-node';
import { Command } from 'commander';
import { parseDuration } from '../../shared/duration.js';
import {
  ACCEPT_INVENTORY_ANNOTATION,
  GPU_HEALTH_DETAIL_ANNOTATION,
  GPU_HEALTH_LABEL,
  NOMA_LABELS,
} from '../../shared/labels.js';
import { UsageError } from '../errors.js';
import type { CliIO } from '../io.js';

interface AcceptOptions {
  count?: string;
  context?: string;
  kubeconfig?: string;
  wait?: boolean;
  timeout: string;
}

/** The agent's detail annotation: how many GPUs it expects and how many answer. */
export function detailOf(node: V1Node): { expected?: number; answering?: number } {
  const text = node.metadata?.annotations?.[GPU_HEALTH_DETAIL_ANNOTATION];
  if (text === undefined) return {};
  try {
    const d = JSON.parse(text) as { expected?: unknown; answering?: unknown };
    return {
      ...(typeof d.expected === 'number' ? { expected: d.expected } : {}),
      ...(typeof d.answering === 'number' ? { answering: d.answering } : {}),
    };
  } catch {
    return {};
  }
}

/**
 * Pure: the count to write, or why there is nothing to do. Without --count it is what the
 * agent reports as answering: the operator accepts what is there, not a number from memory.
 */
export function acceptCount(
  node: V1Node,
  asked: string | undefined,
): { count: number } | { nothing: string } {
  if (asked !== undefined) {
    if (!/^\d{1,4}$/.test(asked)) throw new UsageError('--count', `"${asked}" is not a GPU count`);
    return { count: Number(asked) };
  }
  const health = node.metadata?.labels?.[GPU_HEALTH_LABEL];
  const { answering } = detailOf(node);
  if (health === 'degraded' && answering !== undefined) return { count: answering };
  const count = node.metadata?.labels?.[NOMA_LABELS.gpuCount] ?? '0';
  return {
    nothing:
      health === 'degraded'
        ? `its agent reports it degraded without a readable ${GPU_HEALTH_DETAIL_ANNOTATION}; give --count`
        : `its GPUs are ${health ?? 'not reported'} (${NOMA_LABELS.gpuCount}=${count}); nothing to accept`,
  };
}

/** What the node says about the request: done, refused, or not yet. */
function outcome(node: V1Node, count: number): 'accepted' | 'refused' | undefined {
  if (node.metadata?.annotations?.[ACCEPT_INVENTORY_ANNOTATION] !== undefined) return undefined;
  const labels = node.metadata?.labels ?? {};
  const healthy = labels[GPU_HEALTH_LABEL] === 'healthy';
  return healthy && labels[NOMA_LABELS.gpuCount] === String(count) ? 'accepted' : 'refused';
}

async function waitForAgent(core: CoreV1Api, name: string, count: number, ms: number) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const result = outcome(await core.readNode({ name }), count);
    if (result !== undefined) return result;
    await sleep(1_000);
  }
  return 'timeout' as const;
}

async function runAccept(name: string, opts: AcceptOptions, io: CliIO): Promise<number> {
  const timeout = parseDuration(opts.timeout);
  if (timeout === undefined || timeout <= 0) {
    throw new UsageError('--timeout', `"${opts.timeout}" must be a duration such as 30s or 5m`);
  }
  // Loaded here, not at start: the Kubernetes client is for commands that talk to a cluster.
  const [k8s, { apiErrorText, loadKubeConfig }] = await Promise.all([
    import('@kubernetes/client-node'),
    import('../kube/client.js'),
  ]);
  const core = loadKubeConfig(opts).makeApiClient(k8s.CoreV1Api);
  let node: V1Node;
  try {
    node = await core.readNode({ name });
  } catch (err) {
    io.err(`error: node ${name}: ${apiErrorText(err)}\n`);
    return 1;
  }
  const decided = acceptCount(node, opts.count);
  if ('nothing' in decided) {
    io.out(`node ${name}: ${decided.nothing}\n`);
    return 0;
  }
  const { count } = decided;
  const body = { metadata: { annotations: { [ACCEPT_INVENTORY_ANNOTATION]: String(count) } } };
  await core.patchNode(
    { name, body },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
  );
  const { expected } = detailOf(node);
  io.out(
    `asked the agent on ${name} to accept ${count} GPUs` +
      `${expected === undefined ? '' : ` (it remembers ${expected})`} ` +
      `(${ACCEPT_INVENTORY_ANNOTATION}=${count}); it labels the new count, marks the node ` +
      `healthy and removes the annotation\n`,
  );
  if (opts.wait !== true) return 0;
  const result = await waitForAgent(core, name, count, timeout);
  if (result === 'accepted') {
    io.out(`node ${name}: ${NOMA_LABELS.gpuCount}=${count}, ${GPU_HEALTH_LABEL}=healthy\n`);
    return 0;
  }
  io.err(
    result === 'refused'
      ? `error: the agent on ${name} did not accept ${count} GPUs; see: kubectl describe node ${name} (Event InventoryAcceptRefused)\n`
      : `error: no answer from the agent on ${name} within ${opts.timeout}; is it running?\n`,
  );
  return 1;
}

export function acceptInventoryCommand(
  io: CliIO,
  bin: string,
  setExit: (code: number) => void,
): Command {
  return new Command('accept-inventory')
    .summary('take the GPUs that answer now as the node’s inventory (after removing a GPU)')
    .description(
      'When a GPU stops answering, the node agent keeps the GPU count and tier labels and ' +
        `marks the node ${GPU_HEALTH_LABEL}=degraded. If the GPU was removed on purpose (or ` +
        'will not come back), accept the smaller inventory: this writes the annotation ' +
        `${ACCEPT_INVENTORY_ANNOTATION}=<count> (default: the count the agent reports as ` +
        'answering); the agent, if that many GPUs answer, labels the new count, marks the ' +
        'node healthy and removes the annotation.',
    )
    .argument('<node>', 'the Node')
    .option('--count <n>', 'GPUs to accept (default: those that answer now)')
    .option('--wait', 'wait until the agent has taken the new inventory')
    .option('--timeout <duration>', 'how long --wait waits', '2m')
    .option('--context <name>', 'kubeconfig context')
    .option('--kubeconfig <file>', 'kubeconfig file (default: $KUBECONFIG or ~/.kube/config)')
    .addHelpText(
      'after',
      `
Examples:
  ${bin} nodes accept-inventory gpu-07 --wait

Plain kubectl does the same (7: the GPUs that answer now):
  kubectl annotate node gpu-07 ${ACCEPT_INVENTORY_ANNOTATION}=7
`,
    )
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      setExit(await runAccept(name, cmd.opts<AcceptOptions>(), io));
    });
}
