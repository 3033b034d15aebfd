// `npm start`: the sandbox. A real local control plane (its own, under .sandbox/), deploy/
// applied to it (CRD, RBAC, admission policy, label rules, and the DaemonSet and Deployment,
// whose pods KWOK plays), four simulated GPU nodes, and the real coordinator and one real agent
// per node as local processes, each with a token of deploy/'s own ServiceAccounts (an agent's
// token is bound to its DaemonSet pod, so the admission policy holds it to its node).
// Ctrl-C stops the processes, then the control plane.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, KubeConfig, type V1Node } from '@kubernetes/client-node';
import { BINARY, down, up } from '../cluster/cluster.js';
import {
  AGENT_SERVICE_ACCOUNT,
  COORDINATOR_SERVICE_ACCOUNT,
  LINK_AUDIENCE,
  NOMA_NAMESPACE,
  applyObjects,
  labelRulesText,
  deployObjects,
} from '../support/deploy.js';
import { generateDevCerts } from '../../shared/dev-certs.js';
import { mintToken, writeTokenKubeconfig } from '../support/identity.js';
import { SimulatedMachine } from '../support/machine.js';
import { SandboxChild } from './child-process.js';
import {
  agentArgs,
  agentEnv,
  coordinatorArgs,
  type AgentContext,
  type LinkTlsFiles,
} from './component-args.js';
import { CLUSTER_DIR, ROOT, paths } from './layout.js';
import { SIM_NODES, createSimNode, setBootID, type SimNode } from './sim-nodes.js';

const HELP = `Usage: npm start [-- options]

Starts the noma sandbox: a local control plane, deploy/ installed on it, four simulated GPU
nodes, the coordinator and one agent per node. Ctrl-C stops everything.

Options:
  --agent-arg <flag>        extra flag for every agent (repeatable), e.g. --agent-arg=--log-level=debug
  --coordinator-arg <flag>  extra flag for the coordinator (repeatable)
  -h, --help                this text`;

const TOKEN_SECONDS = 24 * 3600;
const t0 = performance.now();
const elapsed = () => ((performance.now() - t0) / 1000).toFixed(1);
const say = (msg: string) => {
  console.log(`[sandbox ${elapsed().padStart(5)}s] ${msg}`);
};

const children = new Set<SandboxChild>();
const agents = new Map<string, SandboxChild>();
let stopping = false;
const isStopping = () => stopping;
/** Nodes in a simulated reboot: their agent's exit is expected. */
const rebooting = new Set<string>();

function recordChildren(): void {
  const pids = [...children].map((c) => c.proc.pid).filter((p) => p !== undefined);
  writeFileSync(paths.pids, JSON.stringify(pids));
}

/** Kills process groups a previous sandbox that died without cleaning up left behind. */
function killStaleChildren(): void {
  if (!existsSync(paths.pids) || !existsSync('/proc')) return;
  const pids = JSON.parse(readFileSync(paths.pids, 'utf8')) as number[];
  for (const pid of pids) {
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue; // gone
    }
    // Only if the pid still is one of ours (pids are reused).
    if (!/(agent|coordinator)\/main\.ts/.test(cmdline)) continue;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  rmSync(paths.pids, { force: true });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => {
        if (addr === null || typeof addr === 'string') reject(new Error('no port'));
        else resolve(addr.port);
      });
    });
  });
}

function spawnNode(name: string, entry: string, args: string[], env: Record<string, string> = {}) {
  const child = new SandboxChild({
    name,
    argv: [process.execPath, '--import', 'tsx', entry, ...args],
    cwd: ROOT,
    env: { ...process.env, ...env },
    logFile: join(paths.logs, `${name}.log`),
  });
  children.add(child);
  recordChildren();
  void child.exited.then((code) => {
    children.delete(child);
    if (!stopping && !rebooting.has(name.replace(/^agent-/, ''))) {
      console.error(`[sandbox] ${name} exited (${String(code)}); log: ${child.opts.logFile}`);
    }
  });
  return child;
}

/** DaemonSet pods of the agent, by node, once scheduled. */
async function agentPods(kc: KubeConfig): Promise<Map<string, { name: string; uid: string }>> {
  const core = kc.makeApiClient(CoreV1Api);
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const pods = await core.listNamespacedPod({
      namespace: NOMA_NAMESPACE,
      labelSelector: 'app.kubernetes.io/component=agent',
    });
    const byNode = new Map<string, { name: string; uid: string }>();
    for (const p of pods.items) {
      const node = p.spec?.nodeName;
      if (node !== undefined && p.metadata?.name !== undefined && p.metadata.uid !== undefined) {
        byNode.set(node, { name: p.metadata.name, uid: p.metadata.uid });
      }
    }
    if (SIM_NODES.every((n) => byNode.has(n.name))) return byNode;
    await sleep(200);
  }
  throw new Error('the agent DaemonSet did not get a pod on every node in 60 s');
}

const agentUrls = new Map<string, string>();

async function startAgent(ctx: AgentContext): Promise<void> {
  const child = spawnNode(`agent-${ctx.node.name}`, 'agent/main.ts', agentArgs(ctx), agentEnv(ctx));
  agents.set(ctx.node.name, child);
  agentUrls.set(ctx.node.name, await child.waitForLine(/"address":"(http:\/\/[^"]+)"/, 60_000));
}

/**
 * The node's simulated machine (test/support/machine.ts): when its agent asks for a reboot, it
 * stops the agent, reports a new bootID on the Node with the admin identity (the kubelet's
 * part; the agent's identity may not write Node status) and starts the agent again.
 */
function simulatedMachine(kc: KubeConfig, ctx: AgentContext): SimulatedMachine {
  const node = ctx.node.name;
  return new SimulatedMachine({
    bootIdFile: paths.bootIdFile(node),
    rebootRequestFile: paths.rebootRequest(node),
    reportBootID: (bootID) => setBootID(kc, node, bootID),
    stopAgent: async () => {
      rebooting.add(node);
      await agents.get(node)?.stop();
    },
    startAgent: async () => {
      try {
        if (!isStopping()) await startAgent(ctx);
      } finally {
        rebooting.delete(node);
      }
    },
    downMs: 1_000,
    onReboot: (phase, bootID) => {
      say(
        phase === 'down'
          ? `rebooting ${node} (simulated)`
          : `${node} is back (bootID ${bootID.slice(0, 8)}…)`,
      );
    },
    onError: (err) => {
      rebooting.delete(node);
      console.error(`[sandbox] reboot of ${node} failed:`, err);
    },
  });
}

/** The link's CA and a serving certificate for 127.0.0.1, new for every sandbox. */
async function writeLinkTls(): Promise<LinkTlsFiles> {
  mkdirSync(paths.linkTls, { recursive: true });
  const certs = await generateDevCerts(['127.0.0.1', 'localhost']);
  const files = {
    caFile: join(paths.linkTls, 'ca.crt'),
    certFile: join(paths.linkTls, 'tls.crt'),
    keyFile: join(paths.linkTls, 'tls.key'),
  };
  writeFileSync(files.caFile, certs.caCert);
  writeFileSync(files.certFile, certs.cert);
  writeFileSync(files.keyFile, certs.key, { mode: 0o600 });
  return files;
}

function nodeTable(nodes: V1Node[]): string {
  const rows = [['NAME', 'READY', 'HARDWARE.TIER', 'GPU.COUNT', 'GPUS', 'BOOT ID']];
  for (const n of nodes) {
    const labels = n.metadata?.labels ?? {};
    const skus = Object.keys(labels)
      .filter((k) => /^gpu\.[a-z0-9]+$/.test(k) && k !== 'gpu.count' && labels[k] === 'true')
      .map((k) => k.slice(4));
    const ready = n.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
    rows.push([
      n.metadata?.name ?? '',
      ready ? 'True' : 'False',
      labels['hardware.tier'] ?? '',
      labels['gpu.count'] ?? '',
      skus.join(',') || '-',
      `${(n.status?.nodeInfo?.bootID ?? '').slice(0, 8)}…`,
    ]);
  }
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('   ')).join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'agent-arg': { type: 'string', multiple: true, default: [] },
      'coordinator-arg': { type: 'string', multiple: true, default: [] },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    console.log(HELP);
    return;
  }
  killStaleChildren();
  for (const dir of [paths.root, paths.logs, paths.rebootRequests])
    mkdirSync(dir, { recursive: true });
  for (const n of SIM_NODES) {
    // A node's state dir stands for its hostPath: fresh nodes, fresh state.
    rmSync(paths.nodeDir(n.name), { recursive: true, force: true });
    mkdirSync(join(paths.nodeDir(n.name), 'state'), { recursive: true });
    rmSync(paths.rebootRequest(n.name), { force: true });
  }

  say(
    existsSync(BINARY)
      ? 'starting the local control plane'
      : 'building the local control plane (first run only: several minutes), then starting it',
  );
  await down(CLUSTER_DIR); // always a fresh cluster, also after a crash
  const { kubeconfig } = await up(CLUSTER_DIR);
  say(`control plane ready`);
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);

  await applyObjects(kc, deployObjects(), 'noma-sandbox');
  say('deploy/ applied (CRD, RBAC, admission policy, label rules, DaemonSet, Deployment)');
  const [created, tls] = await Promise.all([
    Promise.all(SIM_NODES.map((n) => createSimNode(kc, n))),
    writeLinkTls(),
  ]);
  say(`nodes created: ${SIM_NODES.map((n) => `${n.name} (${n.description})`).join(', ')}`);

  const pods = await agentPods(kc);
  const coordinatorKubeconfig = writeTokenKubeconfig(
    kc,
    await mintToken(kc, NOMA_NAMESPACE, COORDINATOR_SERVICE_ACCOUNT, {
      expirationSeconds: TOKEN_SECONDS,
    }),
    join(paths.root, 'coordinator.kubeconfig'),
    COORDINATOR_SERVICE_ACCOUNT,
  );
  const rulesFile = join(paths.root, 'label-rules.yaml');
  writeFileSync(rulesFile, labelRulesText());
  const agentPort = await freePort();

  const coordinator = spawnNode(
    'coordinator',
    'coordinator/main.ts',
    coordinatorArgs({
      kubeconfig: coordinatorKubeconfig,
      agentPort,
      tls,
      extra: values['coordinator-arg'],
    }),
    { POD_NAMESPACE: NOMA_NAMESPACE },
  );
  const coordinatorPort = coordinator.waitForLine(/"httpPort":(\d+)/, 60_000);

  await Promise.all(
    SIM_NODES.map(async (node: SimNode, i) => {
      const pod = pods.get(node.name);
      if (pod === undefined) throw new Error(`no agent pod on ${node.name}`);
      const dir = paths.nodeDir(node.name);
      const token = await mintToken(kc, NOMA_NAMESPACE, AGENT_SERVICE_ACCOUNT, {
        boundPod: pod,
        expirationSeconds: TOKEN_SECONDS,
      });
      const linkTokenFile = join(dir, 'link-token');
      writeFileSync(
        linkTokenFile,
        await mintToken(kc, NOMA_NAMESPACE, AGENT_SERVICE_ACCOUNT, {
          boundPod: pod,
          audiences: [LINK_AUDIENCE],
          expirationSeconds: TOKEN_SECONDS,
        }),
        { mode: 0o600 },
      );
      const ctx: AgentContext = {
        node,
        paths,
        kubeconfig: writeTokenKubeconfig(kc, token, join(dir, 'kubeconfig'), AGENT_SERVICE_ACCOUNT),
        linkTokenFile,
        coordinatorAgentPort: agentPort,
        coordinatorCa: tls.caFile,
        rulesFile,
        extra: values['agent-arg'],
      };
      const machine = simulatedMachine(kc, ctx);
      // The machine is on before its agent starts: the agent reads the Node's boot ID.
      await machine.start(created[i]?.status?.nodeInfo?.bootID ?? '');
      onShutdown.push(() => void machine.close());
      await startAgent(ctx);
    }),
  );
  const httpPort = await coordinatorPort;
  await coordinator.waitForLine(/watching NodeMaintenances/, 60_000);
  say('coordinator leading, agents listening');

  const core = kc.makeApiClient(CoreV1Api);
  const labelDeadline = Date.now() + 60_000;
  let nodes: V1Node[];
  for (;;) {
    nodes = (await core.listNode()).items;
    const labeled = nodes.filter((n) => n.metadata?.labels?.['hardware.tier'] !== undefined);
    if (labeled.length === SIM_NODES.length) break;
    if (Date.now() > labelDeadline) throw new Error('the agents did not label every node in 60 s');
    await sleep(100);
  }
  const labeledAfter = elapsed();
  say(`all ${SIM_NODES.length} nodes labeled by their agents`);
  // The link (TLS, TokenReview, node binding) is what a Reboot or Script needs: show that it is up.
  const linkDeadline = Date.now() + 60_000;
  // /agents needs a token allowed to read it (deploy/endpoints-rbac.yaml's reader).
  const reader = await mintToken(kc, NOMA_NAMESPACE, 'noma-metrics-reader');
  for (;;) {
    const res = await fetch(`http://127.0.0.1:${httpPort}/agents`, {
      headers: { authorization: `Bearer ${reader}` },
    }).catch(() => undefined);
    const body =
      res?.ok === true ? ((await res.json()) as { agents: { node: string }[] }) : undefined;
    if (body?.agents.length === SIM_NODES.length) break;
    if (Date.now() > linkDeadline)
      throw new Error('the agents did not connect to the coordinator in 60 s');
    await sleep(200);
  }
  say(`all ${SIM_NODES.length} agents connected to the coordinator (TLS, node-bound tokens)`);

  const rel = (p: string) => relative(process.cwd(), p) || '.';
  console.log(`
noma sandbox is up: nodes labeled ${labeledAfter} s after start.

  export KUBECONFIG=${kubeconfig}
  kubectl get nodes -L hardware.tier,gpu.count

${nodeTable(nodes)}

Try a maintenance (examples/):
  kubectl apply -f ${rel(join(ROOT, 'examples', 'drain-and-return.yaml'))}   # cordon, drain, return to service
  kubectl apply -f ${rel(join(ROOT, 'examples', 'reboot.yaml'))}             # reboot the GPU nodes one by one
  kubectl get noma -A -w

Coordinator metrics: http://127.0.0.1:${httpPort}/metrics   (a token: curl -H "Authorization: Bearer $(kubectl create token -n ${NOMA_NAMESPACE} noma-metrics-reader)")
Agents (/healthz /readyz /status /metrics):
${SIM_NODES.map((n) => `  ${n.name.padEnd(12)} ${agentUrls.get(n.name) ?? ''}/status`).join('\n')}
Logs: ${rel(paths.logs)}/   Reboot a node by hand: touch ${rel(paths.rebootRequest('gpu-h100-01'))}
Ctrl-C stops everything.`);
}

const onShutdown: (() => void)[] = [];

async function shutdown(code: number): Promise<never> {
  stopping = true;
  for (const f of onShutdown) f();
  say('stopping agents and coordinator');
  await Promise.all([...children].map((c) => c.stop()));
  say('stopping the control plane');
  await down(CLUSTER_DIR);
  rmSync(paths.pids, { force: true });
  say('stopped; no process left behind');
  process.exit(code);
}

let signals = 0;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    signals += 1;
    if (signals > 1) {
      // Second Ctrl-C: no more waiting.
      for (const c of children) c.killNow();
      void down(CLUSTER_DIR).finally(() => process.exit(130));
      return;
    }
    void shutdown(0);
  });
}
process.on('exit', () => {
  for (const c of children) c.killNow();
});

main().catch(async (err: unknown) => {
  console.error('[sandbox] failed:', err instanceof Error ? err.message : err);
  await shutdown(1);
});
