// The world of one chaos row, built fresh for it on the suite's own control plane: a namespace,
// three simulated nodes (the third cordoned by someone before the maintenance), a GPU pod on
// each whose eviction takes a few seconds, two coordinator replicas on one Lease, the proxy
// that plays the leader's Service, an agent per node, and watches of everything a fault point
// or a check needs. Faults wait on its events (`when`), act on its processes, and leave a
// timeline.
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubernetesObject,
  type V1Node,
  type V1Pod,
} from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION, type NodeMaintenance } from '../../shared/api/index.js';
import { daemonSetBoundTokens } from '../support/agent-daemonset.js';
import { testCoordinatorArgs } from '../support/coordinator-process.js';
import { DrainFixture } from '../support/drain-fixtures.js';
import {
  adminKubeConfig,
  createNamespace,
  createSimNode,
  deleteSimNode,
  uniqueName,
  waitFor,
} from '../support/kube.js';
import { AGENT_SA, ensureServiceAccount, freePort, writeLinkTls } from '../support/link.js';
import { maintenances } from '../support/maintenance.js';
import type { Version } from './history.js';
import { LeaderProxy } from './leader-proxy.js';
import { ChaosNode, sideFile, type SideStep } from './node.js';
import { Replica } from './replica.js';
import { watchEvery, type ResilientWatch } from './watch.js';

export type ChaosEvent =
  | { readonly kind: 'status'; readonly m: NodeMaintenance }
  | { readonly kind: 'node'; readonly node: V1Node }
  | { readonly kind: 'pod'; readonly pod: V1Pod }
  | { readonly kind: 'reboot'; readonly node: string; readonly phase: 'down' | 'up' }
  | {
      readonly kind: 'side';
      readonly node: string;
      readonly step: SideStep;
      readonly count: number;
    }
  | { readonly kind: 'lease'; readonly holder: string | undefined };

interface Waiter {
  pick: (e: ChaosEvent) => unknown;
  resolve: (v: unknown) => void;
}

export interface RigOptions {
  readonly row: string;
  readonly kubeconfig: string;
  /** The suite's build of the agent and coordinator ('' : from source). */
  readonly buildDir: string;
  /** Dir of the suite's control plane (its supervisor's children include the API server). */
  readonly clusterDir: string;
  /** A replica is started again this long after it exits (the kubelet's restart). */
  readonly restartDelayMs: number;
}

/** Script → Reboot → Run → Complete; each node-local step appends a line to its side file. */
export function chaosActions(): Record<string, unknown>[] {
  const line = (step: SideStep) => `echo "$$ $(date +%s.%N)" >> ${sideFile(step)}`;
  return [
    {
      type: 'Script',
      name: 'script',
      timeout: '2m',
      script: { script: `${line('script')}; sleep 2; echo script done` },
    },
    { type: 'Reboot', timeout: '2m' },
    {
      type: 'Run',
      name: 'run',
      timeout: '2m',
      run: { command: ['sh', '-c', `${line('run')}; sleep 1.5; echo run done`] },
    },
    { type: 'Complete' },
  ];
}

export class Rig {
  readonly kc = adminKubeConfig();
  readonly core = this.kc.makeApiClient(CoreV1Api);
  readonly t0 = Date.now();
  readonly timeline: { at: number; what: string }[] = [];
  readonly versions: Version[] = [];
  readonly nodeVersions: { at: number; node: V1Node }[] = [];
  readonly nodes: ChaosNode[] = [];
  /** Each node's boot ID when the row began. */
  readonly bootIDs = new Map<string, string>();
  readonly replicas: Replica[] = [];
  readonly name: string;
  readonly pool: string;
  namespace = '';
  proxy: LeaderProxy | undefined;
  latest: NodeMaintenance | undefined;
  /** Set while the API server is stopped (teardown continues it whatever happens). */
  apiserverStopped: number | undefined;
  private readonly waiters = new Set<Waiter>();
  private readonly watches: ResilientWatch[] = [];
  private nodeNames: string[] = [];
  private removeNamespace: (() => Promise<void>) | undefined;
  private sidePoll: NodeJS.Timeout | undefined;
  private home = '';

  constructor(readonly opts: RigOptions) {
    this.name = `chaos-${opts.row}`.slice(0, 50);
    this.pool = uniqueName(`pool-${opts.row}`.slice(0, 40));
  }

  note(what: string): void {
    this.timeline.push({ at: Date.now(), what });
  }

  /** Resolves with the first event (from now on) that `pick` maps to a value. */
  when<T>(what: string, pick: (e: ChaosEvent) => T | undefined, timeoutMs = 60_000): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter = {
        pick,
        resolve: (v) => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          this.note(`fault point reached: ${what}`);
          resolve(v as T);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`fault point "${what}" not reached within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }

  private emit(e: ChaosEvent): void {
    for (const w of [...this.waiters]) {
      const v = w.pick(e);
      if (v !== undefined && v !== false) w.resolve(v);
    }
  }

  /** Times the maintenance watch had to list again: versions between may be missing. */
  get statusRelists(): number {
    return this.watches[0]?.relists ?? 0;
  }

  node(i: number): ChaosNode {
    const n = this.nodes[i];
    if (n === undefined) throw new Error(`no node ${i}`);
    return n;
  }

  replicaOf(identity: string | undefined): Replica | undefined {
    return this.replicas.find((r) => r.identity === identity);
  }

  /** The Lease holder, read now (or the proxy's last reading if the API server is stopped). */
  async holder(): Promise<string | undefined> {
    const read = this.readHolder().catch(() => this.proxy?.holder);
    return Promise.race([read, sleep(1_000).then(() => this.proxy?.holder)]);
  }

  private async readHolder(): Promise<string | undefined> {
    const lease = await this.kc
      .makeApiClient(CoordinationV1Api)
      .readNamespacedLease({ name: this.leaseName, namespace: this.namespace });
    return lease.spec?.holderIdentity ?? undefined;
  }

  get leaseName(): string {
    return `lease-${this.name}`;
  }

  /** The replica that holds the Lease now. */
  async leader(): Promise<Replica> {
    const r = this.replicaOf(await this.holder());
    if (r === undefined) throw new Error('no coordinator holds the Lease');
    return r;
  }

  /** PID of this control plane's kube-apiserver (a child of its supervisor). */
  apiserverPid(): number {
    const sup = execFileSync('cat', [join(this.opts.clusterDir, 'supervisor.pid')], {
      encoding: 'utf8',
    }).trim();
    const out = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', sup], { encoding: 'utf8' });
    const line = out.split('\n').find((l) => / apiserver /.test(l));
    const pid = Number(line?.trim().split(/\s+/)[0]);
    if (!Number.isInteger(pid) || pid <= 0) throw new Error(`no kube-apiserver under ${sup}`);
    return pid;
  }

  stopApiserver(): void {
    process.kill(this.apiserverPid(), 'SIGSTOP');
    this.apiserverStopped = Date.now();
    this.note('SIGSTOP kube-apiserver');
  }

  continueApiserver(): void {
    process.kill(this.apiserverPid(), 'SIGCONT');
    this.apiserverStopped = undefined;
    this.note('SIGCONT kube-apiserver');
  }

  // ---- setup -----------------------------------------------------------------------------

  async setup(): Promise<void> {
    this.home = await mkdtemp(join(tmpdir(), `noma-chaos-${this.opts.row}-`));
    const names = ['a', 'b', 'c'].map((s) => `${this.pool}-${s}`);
    this.nodeNames = names;
    const [ns, created, tls, ports] = await Promise.all([
      createNamespace(`chaos-${this.opts.row}`.slice(0, 40)),
      Promise.all(names.map((n) => this.simNode(n))),
      writeLinkTls(),
      Promise.all([freePort(), freePort()]),
    ]);
    this.namespace = ns.name;
    this.removeNamespace = ns.remove;
    await ensureServiceAccount(this.kc, this.namespace);
    const identities = ['a', 'b'].map((s) => `${this.name}-coord-${s}`);
    const routes = new Map(identities.map((id, i) => [id, ports[i] ?? 0]));
    // As much at once as the order allows: the agents once the first replica leads (they
    // would back off against nobody), the standby beside them.
    const leading = this.startLeader(identities, routes, tls);
    const standby = leading.then(() => this.replicas[1]?.start());
    // Cordoned by someone else before the maintenance (once its pod runs there): it must
    // stay cordoned after Complete.
    const cordoned = this.workloads(names).then(() =>
      new DrainFixture(this.kc, this.namespace, names[2] ?? '').cordon(),
    );
    for (const p of [standby, cordoned]) p.catch(() => undefined);
    const [tokens] = await Promise.all([
      daemonSetBoundTokens(this.kc, this.namespace, 'noma-agent', this.selector(), names),
      leading,
    ]);
    await Promise.all([this.startNodes(names, created, tokens, tls.caFile), standby, cordoned]);
    await this.startWatches();
    await waitFor(
      'agents connected to the leader, the standby up',
      async () => {
        const leader = await this.leader();
        const agents = (await leader.agents()) ?? [];
        const standby = this.replicas.find((r) => r !== leader);
        return names.every((n) => agents.includes(n)) && standby?.httpPort !== undefined;
      },
      60_000,
      200,
    );
    this.note('setup done');
  }

  private selector(): Record<string, string> {
    return { 'noma.dev/chaos-pool': this.pool };
  }

  private async simNode(name: string): Promise<V1Node> {
    return createSimNode(name, { labels: this.selector(), capacity: { 'nvidia.com/gpu': '8' } });
  }

  /** A GPU pod on each node (a ReplicaSet's), 3 s of grace: its eviction takes a while. */
  private async workloads(names: readonly string[]): Promise<void> {
    await Promise.all(
      names.map((n, i) =>
        new DrainFixture(this.kc, this.namespace, n).replicaSet(`gpu-${i}`, 1, {
          gpus: 1,
          graceSeconds: 3,
        }),
      ),
    );
    await waitFor(
      'a running GPU pod on each node',
      async () => {
        const pods = (await this.core.listNamespacedPod({ namespace: this.namespace })).items;
        return names.every((n) =>
          pods.some(
            (p) =>
              p.spec?.nodeName === n &&
              p.metadata?.name?.startsWith('gpu-') === true &&
              p.status?.phase === 'Running',
          ),
        );
      },
      60_000,
      200,
    );
  }

  /** Both replicas (not started) and the proxy; starts the first and waits until it leads. */
  private async startLeader(
    identities: readonly string[],
    routes: ReadonlyMap<string, number>,
    tls: { certFile: string; keyFile: string },
  ): Promise<void> {
    for (const identity of identities) {
      const agentPort = routes.get(identity) ?? 0;
      this.replicas.push(
        new Replica({
          identity,
          agentPort,
          kubeconfig: this.opts.kubeconfig,
          buildDir: this.opts.buildDir,
          restartDelayMs: this.opts.restartDelayMs,
          timeline: (w) => {
            this.note(w);
          },
          args: [
            ...testCoordinatorArgs(this.namespace, this.leaseName, identity),
            ...['--agent-port', String(agentPort)],
            ...['--agent-tls-cert', tls.certFile, '--agent-tls-key', tls.keyFile],
            ...['--agent-service-account', `${this.namespace}/${AGENT_SA}`],
            ...['--agent-heartbeat', '1s', '--agent-retry', '500ms'],
          ],
        }),
      );
    }
    this.proxy = new LeaderProxy({
      routes,
      holder: () => this.readHolder(),
      onHolder: (holder) => {
        this.note(`Lease holder: ${holder ?? 'none'}`);
        this.emit({ kind: 'lease', holder });
      },
    });
    await this.proxy.start();
    // The first replica leads; the second starts once it does, as the standby.
    const first = this.replicas[0];
    await first?.start();
    await waitFor('the first replica leads', async () => (await this.holder()) === first?.identity);
  }

  private async startNodes(
    names: readonly string[],
    created: readonly V1Node[],
    tokens: ReadonlyMap<string, string>,
    caFile: string,
  ): Promise<void> {
    for (const [i, name] of names.entries()) {
      this.bootIDs.set(name, created[i]?.status?.nodeInfo?.bootID ?? '');
      this.nodes.push(
        new ChaosNode({
          name,
          home: join(this.home, name),
          token: tokens.get(name) ?? '',
          kubeconfig: this.opts.kubeconfig,
          buildDir: this.opts.buildDir,
          proxyPort: this.proxy?.port ?? 0,
          caFile,
          timeline: (w) => {
            this.note(w);
          },
          onReboot: (node, phase) => {
            this.emit({ kind: 'reboot', node, phase });
          },
        }),
      );
    }
    await Promise.all(this.nodes.map((n, i) => n.boot(created[i]?.status?.nodeInfo?.bootID ?? '')));
  }

  /** The maintenance (every version), our Nodes and the namespace's pods, side-effect files. */
  private async startWatches(): Promise<void> {
    this.watches.push(await this.watchMaintenance());
    const labelSelector = `noma.dev/chaos-pool=${this.pool}`;
    const ns = this.namespace;
    this.watches.push(
      await watchEvery<V1Node>(
        this.kc,
        '/api/v1/nodes',
        () => this.core.listNode({ labelSelector }),
        { labelSelector },
        (_type, node) => {
          this.nodeVersions.push({ at: Date.now(), node });
          this.emit({ kind: 'node', node });
        },
      ),
      await watchEvery<V1Pod>(
        this.kc,
        `/api/v1/namespaces/${ns}/pods`,
        () => this.core.listNamespacedPod({ namespace: ns }),
        {},
        (_type, pod) => {
          this.emit({ kind: 'pod', pod });
        },
      ),
    );
    this.pollSideEffects();
  }

  private watchMaintenance(): Promise<ResilientWatch> {
    type Watched = NodeMaintenance & KubernetesObject;
    const custom = this.kc.makeApiClient(CustomObjectsApi);
    const ref = { group: GROUP, version: VERSION, plural: PLURAL, namespace: this.namespace };
    return watchEvery<Watched>(
      this.kc,
      `/apis/${GROUP}/${VERSION}/namespaces/${this.namespace}/${PLURAL}`,
      async () =>
        (await custom.listNamespacedCustomObject(ref)) as {
          items: Watched[];
          metadata?: { resourceVersion?: string };
        },
      {},
      (type, m) => {
        if (type === 'DELETED' || m.metadata.name !== this.name) return;
        const rv = Number(m.metadata.resourceVersion ?? 0);
        this.versions.push({ at: Date.now(), rv, m });
        this.latest = m;
        this.emit({ kind: 'status', m });
      },
    );
  }

  /** A line appended to a side-effect file is an event (polled: fs.watch misses some). */
  private pollSideEffects(): void {
    const counts = new Map<string, number>();
    this.sidePoll = setInterval(() => {
      for (const n of this.nodes) {
        for (const step of ['script', 'run'] as const) {
          const count = n.sideCount(step);
          const key = `${n.name}/${step}`;
          if ((counts.get(key) ?? 0) === count) continue;
          counts.set(key, count);
          this.note(`side effect: ${step} on ${n.name} (#${count})`);
          this.emit({ kind: 'side', node: n.name, step, count });
        }
      }
    }, 50);
  }

  // ---- the maintenance -------------------------------------------------------------------

  async applyMaintenance(): Promise<void> {
    await maintenances(this.kc, this.namespace).create(this.name, {
      linearTicket: 'CHAOS-13',
      nodeSelector: `noma.dev/chaos-pool=${this.pool}`,
      // All three at once (speed); a failed node does not halt the other two.
      options: { maxUnavailable: 3, maxFailedNodes: 3, drainTimeout: '2m', agentTimeout: '2m' },
      actions: chaosActions(),
    });
    this.note('maintenance created');
  }

  /** Waits until the maintenance ends (Completed or Failed) or `timeoutMs` passes. */
  async waitFinished(timeoutMs: number): Promise<NodeMaintenance | undefined> {
    const done = (m: NodeMaintenance | undefined) =>
      m?.status?.phase === 'Completed' || m?.status?.phase === 'Failed';
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && !done(this.latest)) await sleep(100);
    // Let a last write of a deposed leader show (a rollback after the end counts too).
    await sleep(1_500);
    return this.latest;
  }

  async readNodes(): Promise<V1Node[]> {
    return Promise.all(this.nodes.map((n) => this.core.readNode({ name: n.name })));
  }

  // ---- teardown --------------------------------------------------------------------------

  async teardown(): Promise<void> {
    if (this.apiserverStopped !== undefined) this.continueApiserver();
    clearInterval(this.sidePoll);
    for (const w of this.watches) w.stop();
    const step = async (what: string, fn: () => Promise<unknown>) => {
      await fn().catch((err: unknown) => {
        this.note(`teardown: ${what} failed: ${String(err)}`);
      });
    };
    await step('machines and agents', () => Promise.all(this.nodes.map((n) => n.close())));
    await step('proxy', async () => this.proxy?.stop());
    await step('coordinators', () => Promise.all(this.replicas.map((r) => r.retire())));
    await step('maintenance', () => this.dropMaintenance());
    await step('nodes', () => Promise.all(this.nodeNames.map(deleteSimNode)));
    await step('namespace', async () => this.removeNamespace?.());
    await rm(this.home, { recursive: true, force: true });
  }

  /** The coordinators are gone: take the finalizer off so that the namespace can go. */
  private async dropMaintenance(): Promise<void> {
    const ref = { group: GROUP, version: VERSION, plural: PLURAL, namespace: this.namespace };
    const custom = this.kc.makeApiClient(CustomObjectsApi);
    await custom
      .patchNamespacedCustomObject(
        { ...ref, name: this.name, body: { metadata: { finalizers: null } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      )
      .catch(() => undefined);
    await custom.deleteNamespacedCustomObject({ ...ref, name: this.name }).catch(() => undefined);
  }
}
