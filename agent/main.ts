#!/usr/bin/env node
// noma agent: one per node (DaemonSet). Discovers GPUs, keeps the Node's labels, serves health
// endpoints; later also runs node-local maintenance actions for the coordinator.
import { createLogger } from '../shared/log.js';
import { VERSION } from '../shared/version.js';
import { Agent } from './agent.js';
import { helpText, parseConfig, type AgentConfig } from './config.js';
import { detectGpus } from './discovery/detect-gpus.js';
import { readHostFacts } from './discovery/host.js';
import { createMetrics } from './health/metrics.js';
import { buildHealthServer } from '../shared/health-server.js';
import { inClusterAccess, kubeconfigAccess, type KubeAccess } from './kube/access.js';
import { KubeClient } from './kube/client.js';
import { loadRules } from './labels/load-rules.js';
import { NodeLabeler } from './labels/node-labeler.js';
import { prepareStateDir, readOwnedLabels, writeOwnedLabels } from './state.js';
import { LocalExecutor, NsenterExecutor, type HostExecutor } from './actions/executor.js';
import { AgentLink } from './link.js';
import { nodeEventRecorder } from './inventory/events.js';
import { readInventory, writeInventory } from './inventory/store.js';

function executorFor(config: AgentConfig): HostExecutor {
  if (config.executor === 'host') {
    return new NsenterExecutor(config.workDir, config.hostWorkDir, config.bootIdFile);
  }
  return new LocalExecutor(config.workDir, config.bootIdFile, config.rebootRequestFile);
}

function kubeAccess(config: AgentConfig): Promise<KubeAccess> {
  return config.kubeconfig === undefined ? inClusterAccess() : kubeconfigAccess(config.kubeconfig);
}

async function main(): Promise<number> {
  const parsed = parseConfig(process.argv.slice(2), process.env);
  if (parsed.kind === 'help') {
    console.log(helpText());
    return 0;
  }
  if (parsed.kind === 'version') {
    console.log(VERSION);
    return 0;
  }
  if (parsed.kind === 'error') {
    console.error(`noma-agent: invalid configuration:\n${parsed.message}\n\nSee --help.`);
    return 2;
  }
  const { config } = parsed;
  const log = createLogger('noma-agent', config.logLevel).child({ node: config.nodeName });
  log.info({ version: VERSION, config }, 'noma agent starting');

  const rules = await loadRules(config.rulesFile);
  if (!rules.ok) {
    log.fatal({ file: config.rulesFile, errors: rules.errors }, 'label rules rejected');
    console.error(
      `noma-agent: label rules ${config.rulesFile ?? ''} rejected:\n  ${rules.errors.join('\n  ')}`,
    );
    return 2;
  }
  try {
    await prepareStateDir(config.stateDir);
  } catch (err) {
    log.fatal({ err: (err as Error).message }, 'state dir unusable');
    console.error(`noma-agent: --state-dir ${config.stateDir}: ${(err as Error).message}`);
    return 2;
  }
  let kube: KubeClient;
  try {
    kube = new KubeClient(await kubeAccess(config));
  } catch (err) {
    console.error(`noma-agent: cannot load Kubernetes config: ${(err as Error).message}`);
    return 2;
  }

  const metrics = createMetrics();
  // The labeler's watch sees the Node first; the agent (made below) acts on what it shows.
  const nodeSeen: { agent?: Agent } = {};
  const labeler = new NodeLabeler({
    api: kube,
    nodeName: config.nodeName,
    log: log.child({ component: 'labels' }),
    metrics,
    ownedAtStart: await readOwnedLabels(config.stateDir, config.nodeName),
    onApplied: (owned) => {
      writeOwnedLabels(config.stateDir, config.nodeName, owned).catch((err: unknown) => {
        log.warn({ err: (err as Error).message }, 'could not write the state dir');
      });
    },
    onNode: (node) => {
      nodeSeen.agent?.observeNode(node);
    },
  });
  const { rulesFile } = config;
  const agent = new Agent({
    nodeName: config.nodeName,
    log: log.child({ component: 'discovery' }),
    metrics,
    labeler,
    rules: rules.rules,
    intervalMs: config.discoveryIntervalMs,
    detect: () => detectGpus({ path: config.nvidiaSmi, timeoutMs: config.nvidiaSmiTimeoutMs }),
    hostFacts: () => readHostFacts({ nodeName: config.nodeName }),
    ...(rulesFile === undefined ? {} : { reloadRules: () => loadRules(rulesFile) }),
    remembered: await readInventory(config.stateDir, config.nodeName),
    remember: (inventory) => writeInventory(config.stateDir, config.nodeName, inventory),
    recordEvent: nodeEventRecorder(kube, config.nodeName),
  });
  nodeSeen.agent = agent;
  const link =
    config.coordinatorUrl === undefined
      ? undefined
      : new AgentLink({
          log: log.child({ component: 'link' }),
          url: config.coordinatorUrl,
          nodeName: config.nodeName,
          caFile: config.coordinatorCa,
          tokenFile: config.tokenFile,
          stateDir: config.stateDir,
          executor: executorFor(config),
          inventory: () => {
            const s = agent.status();
            return s.inventory === null ? null : { ...s.inventory, host: s.host };
          },
          registry: metrics.registry,
          unreachableAfterMs: config.coordinatorUnreachableMs,
        });
  const server = buildHealthServer({
    log: log.child({ component: 'health' }),
    readiness: () => {
      const r = agent.readiness();
      if (link === undefined) return r;
      const checks = { ...r.checks, coordinator: link.readiness() };
      return { ready: Object.values(checks).every((c) => c.ok), checks };
    },
    status: () => ({ ...agent.status(), link: link?.state() ?? null }),
    registry: metrics.registry,
  });

  // Handlers first: SIGHUP's default action would kill an agent still starting.
  process.on('SIGHUP', () => {
    log.info('SIGHUP: reloading rules and re-running discovery');
    void agent.reload();
  });
  const stopped = new Promise<number>((resolve) => {
    const shutdown = (signal: string): void => {
      log.info({ signal }, 'shutting down; labels stay in place');
      // A hung API call must not keep a terminating pod around until SIGKILL.
      setTimeout(() => {
        log.error('graceful shutdown took over 10 s; exiting');
        resolve(1);
      }, 10_000).unref();
      void Promise.all([server.close(), agent.stop(), link?.stop()]).then(
        () => {
          kube.close();
          resolve(0);
        },
        (err: unknown) => {
          log.error({ err: (err as Error).message }, 'unclean shutdown');
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', shutdown);
    process.once('SIGINT', shutdown);
  });

  agent.start();
  try {
    await link?.start();
  } catch (err) {
    console.error(`noma-agent: agent link: ${(err as Error).message}`);
    await agent.stop();
    return 2;
  }
  try {
    const address = await server.listen({ host: config.healthHost, port: config.healthPort });
    log.info({ address }, 'health server listening');
  } catch (err) {
    console.error(`noma-agent: health server: ${(err as Error).message}`);
    await agent.stop();
    return 1;
  }
  return stopped;
}

const code = await main();
process.exitCode = code;
// Anything still open after shutdown (a socket in the middle of closing) carries nothing we
// need: give it a moment, then go.
setTimeout(() => process.exit(code), 2_000).unref();
