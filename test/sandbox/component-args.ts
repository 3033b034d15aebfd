// The one place where the sandbox decides the flags of its agents and its coordinator. New
// flags (the agent link's address, CA and token file, a reboot command) go here; extra flags
// from the command line (`npm start -- --agent-arg=... --coordinator-arg=...`) are appended.
import { join } from 'node:path';
import { FIXTURES_DIR, NOMA_NAMESPACE_FOR_SANDBOX } from './layout.js';
import type { SimNode } from './sim-nodes.js';

export interface SandboxPaths {
  readonly root: string;
  /** Per node: state dir (the simulated hostPath), kubeconfig, link token. */
  nodeDir(node: string): string;
  /** The sandbox reboots a node when this file appears (then removes it). */
  rebootRequest(node: string): string;
}

export interface CoordinatorContext {
  readonly kubeconfig: string;
  readonly agentPort: number;
  readonly extra: readonly string[];
}

export function coordinatorArgs(ctx: CoordinatorContext): string[] {
  return [
    '--kubeconfig',
    ctx.kubeconfig,
    '--namespace',
    NOMA_NAMESPACE_FOR_SANDBOX,
    '--identity',
    'sandbox-coordinator',
    '--http-port',
    '0',
    '--agent-port',
    String(ctx.agentPort),
    ...ctx.extra,
  ];
}

export interface AgentContext {
  readonly node: SimNode;
  readonly paths: SandboxPaths;
  readonly kubeconfig: string;
  /** The agent's token for the coordinator (audience noma.dev, bound to its pod). */
  readonly linkTokenFile: string;
  readonly coordinatorAgentPort: number;
  readonly rulesFile: string;
  readonly extra: readonly string[];
}

export function agentArgs(ctx: AgentContext): string[] {
  const nodeDir = ctx.paths.nodeDir(ctx.node.name);
  return [
    '--node-name',
    ctx.node.name,
    '--kubeconfig',
    ctx.kubeconfig,
    '--nvidia-smi',
    // No fixture: a path that does not exist, i.e. a node without the NVIDIA driver.
    ctx.node.fixture === undefined
      ? join(nodeDir, 'no-nvidia-smi')
      : `${FIXTURES_DIR}fake-nvidia-smi`,
    '--rules',
    ctx.rulesFile,
    '--health-host',
    '127.0.0.1',
    '--health-port',
    '0',
    '--state-dir',
    join(nodeDir, 'state'),
    ...ctx.extra,
  ];
}

/** The agent's environment on top of the sandbox's own. */
export function agentEnv(ctx: AgentContext): Record<string, string> {
  return {
    ...(ctx.node.fixture === undefined
      ? {}
      : { NOMA_FAKE_NVIDIA_SMI_FIXTURE: `${FIXTURES_DIR}${ctx.node.fixture}` }),
    // For a local executor's Reboot: create this file and the sandbox reboots the node.
    NOMA_SANDBOX_REBOOT_REQUEST: ctx.paths.rebootRequest(ctx.node.name),
    NOMA_SANDBOX_LINK_TOKEN_FILE: ctx.linkTokenFile,
  };
}
