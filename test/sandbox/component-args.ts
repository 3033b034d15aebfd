// The one place where the sandbox decides the flags of its agents and its coordinator; extra
// flags from the command line (`npm start -- --agent-arg=... --coordinator-arg=...`) are
// appended. The agent link is on: the coordinator serves it with a dev certificate for
// 127.0.0.1 (shared/dev-certs.ts), each agent trusts that CA and presents its node-bound token.
import { join } from 'node:path';
import { FIXTURES_DIR, NOMA_NAMESPACE_FOR_SANDBOX } from './layout.js';
import type { SimNode } from './sim-nodes.js';

export interface SandboxPaths {
  readonly root: string;
  /** Per node: state dir (the simulated hostPath), kubeconfig, link token, boot ID. */
  nodeDir(node: string): string;
  /** The node's simulated machine reboots it when this file appears (then removes it). */
  rebootRequest(node: string): string;
  /** The node's current boot ID, owned by its simulated machine. */
  bootIdFile(node: string): string;
}

/** The agent link's TLS files (generated at start, shared/dev-certs.ts). */
export interface LinkTlsFiles {
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
}

export interface CoordinatorContext {
  readonly kubeconfig: string;
  readonly agentPort: number;
  readonly tls: LinkTlsFiles;
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
    '--agent-tls-cert',
    ctx.tls.certFile,
    '--agent-tls-key',
    ctx.tls.keyFile,
    '--agent-service-account',
    `${NOMA_NAMESPACE_FOR_SANDBOX}/noma-agent`,
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
  readonly coordinatorCa: string;
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
    // The certificate names 127.0.0.1; in a cluster this is the Service's DNS name.
    '--coordinator-url',
    `wss://127.0.0.1:${String(ctx.coordinatorAgentPort)}`,
    '--coordinator-ca',
    ctx.coordinatorCa,
    '--token-file',
    ctx.linkTokenFile,
    // Actions run as local processes in <state-dir>/work; a Reboot asks the node's simulated
    // machine (test/support/machine.ts), which owns the boot ID file.
    '--executor',
    'local',
    '--boot-id-file',
    ctx.paths.bootIdFile(ctx.node.name),
    '--reboot-request-file',
    ctx.paths.rebootRequest(ctx.node.name),
    ...ctx.extra,
  ];
}

/** The agent's environment on top of the sandbox's own. */
export function agentEnv(ctx: AgentContext): Record<string, string> {
  return {
    ...(ctx.node.fixture === undefined
      ? {}
      : { NOMA_FAKE_NVIDIA_SMI_FIXTURE: `${FIXTURES_DIR}${ctx.node.fixture}` }),
  };
}
