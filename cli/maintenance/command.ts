// `noma pause`, `resume`, `restore` and `retry`: the ways to hold or undo a maintenance. Each
// writes one field of the NodeMaintenance (spec.paused, or the noma.dev/restore and
// noma.dev/retry annotations), so plain kubectl can do the same; the coordinator acts on it.
import { Command } from 'commander';
import { parseDuration } from '../../shared/duration.js';
import { UsageError } from '../errors.js';
import type { CliIO } from '../io.js';
import type { MaintenanceRef } from './api.js';
import {
  annotationOf,
  invalidNodeNames,
  pauseProgress,
  planRequest,
  queueProgress,
  splitNodeFlags,
  type NodeRequest,
  type Plan,
  type RequestKind,
} from './plan.js';

interface CommonOptions {
  namespace?: string;
  context?: string;
  kubeconfig?: string;
  wait?: boolean;
  timeout: string;
}

interface QueueOptions extends CommonOptions {
  node?: string[];
  allFailed?: boolean;
}

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

function withCommonOptions(cmd: Command, waitFor: string): Command {
  return cmd
    .argument('<name>', 'the NodeMaintenance')
    .option('-n, --namespace <namespace>', 'namespace (default: the context’s)')
    .option('--wait', `wait until ${waitFor}`)
    .option('--timeout <duration>', 'how long --wait waits', '5m')
    .option('--context <name>', 'kubeconfig context')
    .option('--kubeconfig <file>', 'kubeconfig file (default: $KUBECONFIG or ~/.kube/config)');
}

/** The maintenance to act on and how long to wait (undefined: no --wait). */
async function resolve(
  name: string,
  opts: CommonOptions,
): Promise<{ ref: MaintenanceRef; waitMs?: number }> {
  const timeout = parseDuration(opts.timeout);
  if (timeout === undefined || timeout <= 0) {
    throw new UsageError('--timeout', `"${opts.timeout}" must be a duration such as 30s or 5m`);
  }
  // Loaded here, not at start: the Kubernetes client is for commands that talk to a cluster.
  const { contextNamespace, loadKubeConfig } = await import('../kube/client.js');
  const kc = loadKubeConfig(opts);
  const ref = { kc, namespace: opts.namespace ?? contextNamespace(kc), name };
  return opts.wait === true ? { ref, waitMs: timeout } : { ref };
}

/** Runs a command body; a CommandFailed is printed line by line and exits 1. */
async function reporting(io: CliIO, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (err) {
    const { CommandFailed } = await import('./api.js');
    if (!(err instanceof CommandFailed)) throw err;
    io.err(
      err.message
        .split('\n')
        .map((l) => `error: ${l}\n`)
        .join(''),
    );
    return 1;
  }
}

async function runPause(name: string, paused: boolean, opts: CommonOptions, io: CliIO) {
  const { ref, waitMs } = await resolve(name, opts);
  const { mustRead, patchMaintenance } = await import('./api.js');
  const label = `${ref.namespace}/${ref.name}`;
  const before = await mustRead(ref);
  const phase = before.status?.phase ?? 'Pending';
  if ((before.spec.paused === true) === paused) {
    io.out(`${label} is ${paused ? 'already' : 'not'} paused (phase ${phase})\n`);
  } else {
    await patchMaintenance(ref, { spec: { paused } });
    io.out(
      paused
        ? `paused ${label} (spec.paused: true; phase ${phase}): no node starts or begins its next step; steps in flight finish\n`
        : `resumed ${label} (spec.paused: false; phase ${phase}): nodes go on with their next steps\n`,
    );
  }
  if (waitMs !== undefined) {
    const { waitUntil } = await import('./wait.js');
    io.out(`${label}: ${await waitUntil(ref, io, waitMs, (m) => pauseProgress(m, paused))}\n`);
  }
  return 0;
}

/** The request from the flags: named nodes, or --all-failed (restore only). */
function nodeRequest(kind: RequestKind, opts: QueueOptions): NodeRequest {
  const nodes = splitNodeFlags(opts.node ?? []);
  if (opts.allFailed === true) {
    if (nodes.length > 0) throw new UsageError('--all-failed', 'cannot be combined with --node');
    return { kind: 'restore', allFailed: true };
  }
  if (nodes.length === 0) {
    const alt = kind === 'restore' ? ' (repeatable), or --all-failed' : ' (repeatable)';
    throw new UsageError('--node', `name the nodes to ${kind}: --node NODE${alt}`);
  }
  const bad = invalidNodeNames(nodes);
  if (bad.length > 0) {
    const hint =
      kind === 'restore' && bad.includes('*') ? '; use --all-failed for every failed node' : '';
    throw new UsageError('--node', `not a node name: ${bad.join(', ')}${hint}`);
  }
  return { kind, nodes };
}

const WHAT_NEXT: Record<RequestKind, string> = {
  restore:
    'the coordinator returns each node to its initial state (phase Restored) and then removes it from the annotation',
  retry:
    'the coordinator runs each node again from its failed step (next attempt) and then removes it from the annotation',
};

async function runQueue(name: string, kind: RequestKind, opts: QueueOptions, io: CliIO) {
  const req = nodeRequest(kind, opts);
  const { ref, waitMs } = await resolve(name, opts);
  const { CommandFailed, updateMaintenance } = await import('./api.js');
  const label = `${ref.namespace}/${ref.name}`;
  const key = annotationOf(kind);
  // Decided again on every read: a write that raced with another is redone on what is there now.
  const { result: plan, after } = await updateMaintenance<Plan>(ref, (m) => {
    const plan = planRequest(m, req);
    if (!plan.ok || plan.added.length === 0) return { result: plan };
    return { result: plan, patch: { metadata: { annotations: { [key]: plan.value ?? null } } } };
  });
  if (!plan.ok) {
    throw new CommandFailed([...plan.problems, `nothing written to ${label}`].join('\n'));
  }
  const phase = after.status?.phase ?? 'Pending';
  if (plan.added.length > 0) {
    io.out(
      `queued ${kind} of ${plan.added.join(', ')} on ${label} (${key}=${plan.value ?? ''}; phase ${phase})\n`,
    );
    io.out(`${WHAT_NEXT[kind]}; follow it with: noma status ${ref.name} -n ${ref.namespace}\n`);
  }
  if (plan.already.length > 0) {
    io.out(`already queued for ${kind} on ${label}: ${plan.already.join(', ')} (phase ${phase})\n`);
  }
  if (waitMs !== undefined) {
    const asked = [...plan.added, ...plan.already];
    const { waitUntil } = await import('./wait.js');
    io.out(`${label}: ${await waitUntil(ref, io, waitMs, (m) => queueProgress(m, kind, asked))}\n`);
  }
  return 0;
}

const pauseHelp = (bin: string, paused: boolean) => `
Examples:
  ${bin} ${paused ? 'pause' : 'resume'} reboot-gpu -n default${paused ? ' --wait' : ''}

Plain kubectl does the same:
  kubectl patch noma reboot-gpu -n default --type merge -p '{"spec":{"paused":${paused}}}'
`;

export function pauseCommand(io: CliIO, bin: string, setExit: (code: number) => void): Command {
  return withCommonOptions(
    new Command('pause')
      .summary('stop a maintenance between steps (spec.paused: true)')
      .description(
        'Pause a maintenance: no node starts and no node begins its next step; steps in ' +
          'flight (drains included) finish. Phase Paused. Sets spec.paused: true; `resume` ' +
          'undoes it.',
      ),
    'the phase is Paused',
  )
    .addHelpText('after', pauseHelp(bin, true))
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      setExit(await reporting(io, () => runPause(name, true, cmd.opts<CommonOptions>(), io)));
    });
}

export function resumeCommand(io: CliIO, bin: string, setExit: (code: number) => void): Command {
  return withCommonOptions(
    new Command('resume')
      .summary('let a paused maintenance go on (spec.paused: false)')
      .description('Resume a paused maintenance: sets spec.paused: false.'),
    'the phase is no longer Paused',
  )
    .addHelpText('after', pauseHelp(bin, false))
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      setExit(await reporting(io, () => runPause(name, false, cmd.opts<CommonOptions>(), io)));
    });
}

export function restoreCommand(io: CliIO, bin: string, setExit: (code: number) => void): Command {
  return withCommonOptions(
    new Command('restore')
      .summary('return failed nodes to their initial state')
      .description(
        'Return nodes of a maintenance to their initial state: uncordoned unless they were ' +
          'cordoned before noma, noma’s taints and labels removed; they show Restored in ' +
          'status and free their slot. A node must be Failed, or not started yet (Pending). ' +
          'Adds the nodes to the noma.dev/restore annotation (comma-separated node names, or ' +
          '`*` for every failed node), keeping the entries already there; the coordinator ' +
          'removes each entry once it has acted on it.',
      )
      .option('--node <node>', 'a node to restore (repeatable, or comma-separated)', collect)
      .option('--all-failed', 'every failed node (writes `*`)'),
    'the coordinator has taken the nodes from the annotation',
  )
    .addHelpText(
      'after',
      `
Examples:
  ${bin} restore reboot-gpu -n default --node gpu-01 --node gpu-02
  ${bin} restore reboot-gpu -n default --all-failed --wait

Plain kubectl does the same (--overwrite replaces the list, where this command adds to it):
  kubectl annotate noma reboot-gpu -n default noma.dev/restore=gpu-01,gpu-02 --overwrite
  kubectl annotate noma reboot-gpu -n default 'noma.dev/restore=*' --overwrite
`,
    )
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      setExit(await reporting(io, () => runQueue(name, 'restore', cmd.opts<QueueOptions>(), io)));
    });
}

export function retryCommand(io: CliIO, bin: string, setExit: (code: number) => void): Command {
  return withCommonOptions(
    new Command('retry')
      .summary('run failed nodes again from their failed step')
      .description(
        'Run failed nodes again from the step that failed, with the next attempt number ' +
          '(steps that succeeded are not run again), after re-checking cordon and drain. Each ' +
          'node must be Failed. Adds the nodes to the noma.dev/retry annotation ' +
          '(comma-separated node names), keeping the entries already there; the coordinator ' +
          'removes each entry once it has acted on it.',
      )
      .option('--node <node>', 'a node to retry (repeatable, or comma-separated)', collect),
    'the coordinator has taken the nodes from the annotation',
  )
    .addHelpText(
      'after',
      `
Examples:
  ${bin} retry reboot-gpu -n default --node gpu-01
  ${bin} retry reboot-gpu -n default --node gpu-01,gpu-02 --wait --timeout 2m

Plain kubectl does the same (--overwrite replaces the list, where this command adds to it):
  kubectl annotate noma reboot-gpu -n default noma.dev/retry=gpu-01,gpu-02 --overwrite
`,
    )
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      setExit(await reporting(io, () => runQueue(name, 'retry', cmd.opts<QueueOptions>(), io)));
    });
}
