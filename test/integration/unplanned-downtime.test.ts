// Unplanned downtime end to end: the real coordinator (small durations) against the real API
// server, real agents for the nodes that have one. The test plays each node's kubelet itself —
// the Node's Ready condition and its Lease in kube-node-lease — because KWOK keeps renewing the
// Lease of a node it manages; a node "goes down" when the test stops its heartbeats and reports
// Ready Unknown, as the node-lifecycle controller would after its grace period.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CoordinationV1Api,
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  V1MicroTime,
  type V1Node,
} from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { CLAIM_ANNOTATION, DOWNTIME_ANNOTATION } from '../../shared/maintenance-keys.js';
import { startAgent, type AgentProcess } from '../support/agent-process.js';
import { startCoordinator, type CoordinatorProcess } from '../support/coordinator-process.js';
import { adminKubeConfig, createNamespace, uniqueName, waitFor } from '../support/kube.js';
import {
  AGENT_SA,
  ensureServiceAccount,
  freePort,
  nodeBoundToken,
  writeLinkTls,
  type LinkTls,
} from '../support/link.js';
import { startWebhookRecorder, type WebhookRecorder } from '../support/webhook.js';

const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const leases = kc.makeApiClient(CoordinationV1Api);
const STRATEGIC = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);
const TAINT = { key: 'runai', value: 'drain', effect: 'NoExecute' };
const AFTER_MS = 2_000;
const SETTLE_MS = 1_000;
/** The coordinator watches only this run's nodes: the cluster is shared with other tests. */
const SCOPE = uniqueName('downtime');
const SCOPE_LABEL = 'noma.dev/test-downtime';

let ns: Awaited<ReturnType<typeof createNamespace>>;
let tls: LinkTls;
let agentPort: number;
let coordinator: CoordinatorProcess;
let webhook: WebhookRecorder;
const leaseName = uniqueName('lease-downtime');
const cleanups: (() => Promise<unknown>)[] = [];

const coordinatorArgs = (): string[] => [
  ...['--namespace', ns.name, '--watch-namespace', ns.name],
  ...['--lease-name', leaseName, '--identity', 'downtime-under-test', '--lease-duration', '2s'],
  ...['--agent-port', String(agentPort), '--agent-tls-cert', tls.certFile],
  ...['--agent-tls-key', tls.keyFile, '--agent-service-account', `${ns.name}/${AGENT_SA}`],
  ...['--agent-heartbeat', '1s', '--notify-webhook-url', webhook.url],
  ...['--unplanned-downtime-after', '2s', '--unplanned-downtime-settle', '1s'],
  ...['--unplanned-downtime-taint', 'runai=drain:NoExecute'],
  ...['--unplanned-downtime-max-nodes', '2'],
];

const start = () =>
  startCoordinator(inject('kubeconfig'), coordinatorArgs(), 30_000, false, {
    NOMA_UNPLANNED_DOWNTIME_NODE_SELECTOR: `${SCOPE_LABEL}=${SCOPE}`,
  });

beforeAll(async () => {
  ns = await createNamespace('downtime');
  tls = await writeLinkTls();
  agentPort = await freePort();
  webhook = await startWebhookRecorder();
  await ensureServiceAccount(kc, ns.name);
  coordinator = await start();
});

afterAll(async () => {
  await coordinator.kill('SIGTERM');
  await webhook.close();
  await ns.remove();
});

afterEach(async (ctx) => {
  if (ctx.task.result?.state === 'fail') {
    console.log(`--- coordinator ---\n${coordinator.logs.slice(-80).join('\n')}`);
  }
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/** Now, to the second: conditions carry seconds only, so the test's clock is cut the same way. */
const wholeSecond = (): number => Math.floor(Date.now() / 1000) * 1000;

/** Plays the kubelet of one Node: Ready with heartbeats, or down (no heartbeats, Unknown). */
class Kubelet {
  #timer: NodeJS.Timeout | undefined;
  constructor(readonly name: string) {}

  static async create(prefix: string, annotations: Record<string, string> = {}) {
    const k = new Kubelet(uniqueName(prefix));
    await core.createNode({
      body: {
        metadata: {
          name: k.name,
          labels: { 'kubernetes.io/hostname': k.name, [SCOPE_LABEL]: SCOPE },
          annotations,
        },
      },
    });
    cleanups.push(async () => {
      k.stop();
      await core.deleteNode({ name: k.name });
      await leases.deleteNamespacedLease({ name: k.name, namespace: 'kube-node-lease' });
    });
    await leases.createNamespacedLease({
      namespace: 'kube-node-lease',
      body: {
        metadata: { name: k.name },
        spec: { holderIdentity: k.name, leaseDurationSeconds: 40, renewTime: new V1MicroTime() },
      },
    });
    await k.up();
    return k;
  }

  async #ready(status: 'True' | 'Unknown', transition: number): Promise<void> {
    await core.patchNodeStatus(
      {
        name: this.name,
        body: {
          status: {
            conditions: [
              {
                type: 'Ready',
                status,
                reason: status === 'True' ? 'KubeletReady' : 'NodeStatusUnknown',
                message:
                  status === 'True'
                    ? 'kubelet is posting ready status'
                    : 'Kubelet stopped posting node status.',
                lastHeartbeatTime: new Date(),
                lastTransitionTime: new Date(transition),
              },
            ],
          },
        },
      },
      STRATEGIC,
    );
  }

  async #heartbeat(): Promise<void> {
    await leases.patchNamespacedLease(
      {
        name: this.name,
        namespace: 'kube-node-lease',
        body: { spec: { renewTime: new V1MicroTime() } },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  /** Ready from now (to the second) on, with heartbeats; returns when it became Ready. */
  async up(): Promise<number> {
    const at = wholeSecond();
    await this.#ready('True', at);
    this.#timer = setInterval(() => {
      void this.#heartbeat().catch(() => undefined);
    }, 1_000);
    return at;
  }

  /** The kubelet stops: no more heartbeats, Ready Unknown; returns when it went down. */
  async down(): Promise<number> {
    this.stop();
    const at = wholeSecond();
    await this.#ready('Unknown', at);
    return at;
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

const read = (name: string): Promise<V1Node> => core.readNode({ name });
const ourTaints = (n: V1Node) =>
  (n.spec?.taints ?? []).filter((t) => t.key === TAINT.key && t.effect === TAINT.effect);
const tainted = async (name: string) => ourTaints(await read(name)).length > 0;

async function events(name: string, reason: string): Promise<string[]> {
  const list = await core.listNamespacedEvent({
    namespace: 'default',
    fieldSelector: `involvedObject.name=${name},reason=${reason}`,
  });
  return list.items.map((e) => e.message ?? '');
}

/** Polls (every 50 ms) until `probe` holds; returns when it did. */
async function timeUntil(what: string, probe: () => Promise<boolean>, timeoutMs = 15_000) {
  await waitFor(what, async () => (await probe()) || undefined, timeoutMs, 50);
  return Date.now();
}

/** Stays false for `forMs` (checked every 100 ms). */
async function staysFalse(what: string, probe: () => Promise<boolean>, forMs: number) {
  const end = Date.now() + forMs;
  while (Date.now() < end) {
    expect(await probe(), what).toBe(false);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function agentFor(node: string): Promise<() => Promise<AgentProcess>> {
  const token = await nodeBoundToken(kc, ns.name, node);
  const home = await mkdtemp(join(tmpdir(), `noma-${node}-`));
  await writeFile(join(home, 'token'), token);
  return async () => {
    const agent = await startAgent({
      nodeName: node,
      kubeconfig: inject('kubeconfig'),
      fixture: 'l4.csv',
      args: [
        ...['--state-dir', join(home, 'state'), '--work-dir', join(home, 'work')],
        ...['--coordinator-url', `wss://localhost:${agentPort}`, '--coordinator-ca', tls.caFile],
        ...['--token-file', join(home, 'token'), '--executor', 'local'],
      ],
    });
    cleanups.push(() => agent.stop());
    return agent;
  };
}

async function agentConnected(node: string): Promise<boolean> {
  const res = await fetch(`${coordinator.baseUrl}/agents`);
  const body = (await res.json()) as { agents: { node: string }[] };
  return body.agents.some((a) => a.node === node);
}

describe('unplanned downtime', () => {
  it('taints a node down longer than the threshold (not before); untaints it once it is Ready again for the settle time and its agent has reconnected', async () => {
    const k = await Kubelet.create('down-agent');
    const startAgentProcess = await agentFor(k.name);
    const agent = await startAgentProcess();
    await waitFor('agent connected', () => agentConnected(k.name));

    const wentDown = await k.down();
    await agent.stop(); // the machine is down: its agent with it
    await staysFalse(
      'tainted before the threshold',
      () => tainted(k.name),
      wentDown + AFTER_MS - 300 - Date.now(),
    );
    const taintedAt = await timeUntil('tainted', () => tainted(k.name));
    expect(taintedAt - wentDown).toBeGreaterThanOrEqual(AFTER_MS);
    const node = await read(k.name);
    expect(ourTaints(node)).toEqual([TAINT]);
    expect(JSON.parse(node.metadata?.annotations?.[DOWNTIME_ANNOTATION] ?? '{}')).toMatchObject({
      taint: TAINT,
      agent: true,
    });
    await waitFor(
      'Warning Event',
      async () => (await events(k.name, 'UnplannedDowntime')).length === 1,
    );
    await waitFor('webhook', () =>
      Promise.resolve(webhook.posts.some((p) => p.text.includes(`node ${k.name} not Ready`))),
    );

    const cameBack = await k.up();
    // Ready and settled, but its agent is not back: the taint stays.
    await staysFalse(
      'untainted without its agent',
      async () => !(await tainted(k.name)),
      cameBack + SETTLE_MS + 1_500 - Date.now(),
    );
    await waitFor(
      'waiting-for-agent Event',
      async () => (await events(k.name, 'UnplannedDowntimeWaitingForAgent')).length === 1,
    );
    await startAgentProcess();
    const agentBack = await timeUntil('agent reconnected', () => agentConnected(k.name));
    const untaintedAt = await timeUntil('untainted', async () => !(await tainted(k.name)));
    expect((await read(k.name)).metadata?.annotations?.[DOWNTIME_ANNOTATION]).toBeUndefined();
    await waitFor(
      'Normal Event',
      async () => (await events(k.name, 'UnplannedDowntimeOver')).length === 1,
    );
    console.log(
      `DOWNTIME with-agent: NotReady→tainted ${taintedAt - wentDown} ms (threshold ${AFTER_MS}); Ready→untainted ${untaintedAt - cameBack} ms (settle ${SETTLE_MS}), agent reconnected→untainted ${untaintedAt - agentBack} ms`,
    );
  });

  it('a node that never had an agent is judged by Ready alone', async () => {
    const k = await Kubelet.create('down-bare');
    const wentDown = await k.down();
    const taintedAt = await timeUntil('tainted', () => tainted(k.name));
    expect(taintedAt - wentDown).toBeGreaterThanOrEqual(AFTER_MS);
    expect(
      JSON.parse((await read(k.name)).metadata?.annotations?.[DOWNTIME_ANNOTATION] ?? '{}'),
    ).toMatchObject({ agent: false });
    const cameBack = await k.up();
    const untaintedAt = await timeUntil('untainted', async () => !(await tainted(k.name)));
    expect(untaintedAt - cameBack).toBeGreaterThanOrEqual(SETTLE_MS);
    console.log(
      `DOWNTIME no-agent: NotReady→tainted ${taintedAt - wentDown} ms (threshold ${AFTER_MS}); Ready→untainted ${untaintedAt - cameBack} ms (settle ${SETTLE_MS})`,
    );
  });

  it('with more nodes down at once than the cap, taints none and says so in /readyz; one back, the others get it', async () => {
    const ks = await Promise.all([1, 2, 3].map(() => Kubelet.create('partition')));
    await Promise.all(ks.map((k) => k.down()));
    await waitFor('readyz says partition', async () => {
      const body = (await (await fetch(`${coordinator.baseUrl}/readyz`)).json()) as {
        unplannedDowntime?: { partition: boolean; detail?: string };
      };
      return (
        body.unplannedDowntime?.partition === true &&
        body.unplannedDowntime.detail?.includes('3 nodes not Ready')
      );
    });
    for (const k of ks) {
      await staysFalse(`${k.name} tainted in a partition`, () => tainted(k.name), 300);
    }
    await staysFalse(
      'any tainted in a partition',
      async () => (await Promise.all(ks.map((k) => tainted(k.name)))).some(Boolean),
      AFTER_MS + 1_000,
    );
    for (const k of ks) {
      await waitFor(
        `suppression Event on ${k.name}`,
        async () => (await events(k.name, 'UnplannedDowntimeSuppressed')).length === 1,
      );
    }
    const metrics = await (await fetch(`${coordinator.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/^noma_unplanned_downtime_partition 1$/m);
    expect(metrics).toMatch(/^noma_unplanned_downtime_partition_suppressions_total [1-9]/m);

    const [first, ...rest] = ks;
    await first?.up();
    for (const k of rest)
      await timeUntil(`${k.name} tainted once fewer are down`, () => tainted(k.name));
    expect(await tainted(first?.name ?? '')).toBe(false);
    const body = (await (await fetch(`${coordinator.baseUrl}/readyz`)).json()) as {
      unplannedDowntime?: { partition: boolean };
    };
    expect(body.unplannedDowntime?.partition).toBe(false);
  });

  it('a coordinator killed while a node is down neither taints it twice nor forgets it', async () => {
    const k = await Kubelet.create('restart');
    await k.down();
    await timeUntil('tainted', () => tainted(k.name));
    const before = (await read(k.name)).metadata?.annotations?.[DOWNTIME_ANNOTATION];
    await coordinator.kill('SIGKILL');
    coordinator = await start();
    // Several ticks of the new leader on the node still down: the same one taint, the same record.
    await new Promise((r) => setTimeout(r, 2_000));
    const node = await read(k.name);
    expect(ourTaints(node)).toHaveLength(1);
    expect(node.metadata?.annotations?.[DOWNTIME_ANNOTATION]).toBe(before);
    expect(await events(k.name, 'UnplannedDowntime')).toHaveLength(1);
    await k.up();
    await timeUntil('untainted by the new leader', async () => !(await tainted(k.name)));
  });

  it('a node in a NodeMaintenance (claimed) is left to that maintenance', async () => {
    const claim = JSON.stringify({ maintenance: `${ns.name}/m`, uid: 'u-1', phase: 'Rebooting' });
    const k = await Kubelet.create('claimed', { [CLAIM_ANNOTATION]: claim });
    const free = await Kubelet.create('unclaimed');
    await Promise.all([k.down(), free.down()]);
    // The unclaimed node, down as long, is tainted: the claimed one was judged at the same ticks.
    await timeUntil('unclaimed tainted', () => tainted(free.name));
    await staysFalse('claimed tainted', () => tainted(k.name), 1_000);
    expect((await read(k.name)).metadata?.annotations?.[DOWNTIME_ANNOTATION]).toBeUndefined();
  });
});
