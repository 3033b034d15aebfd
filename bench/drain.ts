// drain: one simulated node with 100 pods (half requesting a GPU, grace periods 0–2 s, KWOK as
// the kubelet) drained by noma's drain engine, and an identical node drained in the same run by
// `kubectl drain`. Both cordon and evict all 100 pods (kubectl --ignore-daemonsets
// --delete-emptydir-data --force; noma drainNonGpuPods + deleteEmptyDirData + evictUnmanagedPods),
// one after the other against the same API server, so each run's requests are the diff of
// apiserver_request_total around it. Targets: noma <= 0.7x kubectl's wall time, <= 0.5x requests.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs, promisify } from 'node:util';
import {
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Pod,
} from '@kubernetes/client-node';
import pLimit from 'p-limit';
import { drainNode } from '../coordinator/drain/drain.js';
import { createLogger } from '../shared/log.js';
import { apiGet, down, up } from '../test/cluster/cluster.js';
import { measureCordonLatency } from './cordon-latency.js';

const PODS = 100;
const TARGET_WALL = 0.7;
const TARGET_REQUESTS = 0.5;
const exec = promisify(execFile);
const log = createLogger('bench-drain', 'error');

// ---- apiserver_request_total ------------------------------------------------------------------

type Counters = Map<string, number>;

let metricsKubeconfig: string | undefined;

async function requestCounters(): Promise<Counters> {
  const res = await apiGet('/metrics', {}, metricsKubeconfig);
  if (res.status !== 200) throw new Error(`GET /metrics: HTTP ${res.status}`);
  const out: Counters = new Map();
  for (const line of res.body.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const cut = line.lastIndexOf(' ');
    out.set(line.slice(0, cut), Number(line.slice(cut + 1)));
  }
  return out;
}

function label(series: string, name: string): string {
  return new RegExp(`[{,]${name}="([^"]*)"`).exec(series)?.[1] ?? '';
}

/**
 * Requests a drain client makes: discovery, reading/listing/watching pods, evictions, reading and
 * patching the node. Left out: what the API server and the cluster do in reaction to any drain
 * and would blur the comparison — the PodDisruptionBudget LIST the eviction handler makes over
 * loopback for every eviction, KWOK's final pod DELETEs and status patches, node heartbeats,
 * leases, events, controllers' resyncs.
 */
function isDrainRequest(series: string): boolean {
  const verb = label(series, 'verb');
  const resource = label(series, 'resource');
  const sub = label(series, 'subresource');
  if (resource === '') return /^(api|apis|openapi.*)$/.test(sub);
  if (resource === 'pods') {
    return sub === 'eviction' || (sub === '' && ['GET', 'LIST', 'WATCH'].includes(verb));
  }
  if (resource === 'nodes') return sub === '' && ['GET', 'PATCH', 'PUT'].includes(verb);
  return false;
}

function diff(
  before: Counters,
  after: Counters,
): { all: number; drain: number; bySeries: Map<string, number> } {
  let all = 0;
  let drain = 0;
  const bySeries = new Map<string, number>();
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0);
    if (d <= 0) continue;
    all += d;
    if (isDrainRequest(k)) {
      drain += d;
      const short = `${label(k, 'verb')} ${label(k, 'resource') || label(k, 'subresource')}${
        label(k, 'resource') !== '' && label(k, 'subresource') !== ''
          ? `/${label(k, 'subresource')}`
          : ''
      } ${label(k, 'code')}`;
      bySeries.set(short, (bySeries.get(short) ?? 0) + d);
    }
  }
  return { all, drain, bySeries };
}

// ---- the node and its pods ---------------------------------------------------------------------

async function createNode(core: CoreV1Api, name: string): Promise<void> {
  const capacity = { cpu: '256', memory: '2Ti', pods: '250', 'nvidia.com/gpu': '64' };
  await core.createNode({
    body: {
      metadata: {
        name,
        annotations: { 'kwok.x-k8s.io/node': 'fake' },
        labels: { 'kubernetes.io/hostname': name, 'noma.dev/bench': 'drain' },
      },
      status: { capacity, allocatable: capacity },
    },
  });
  await waitFor(`node ${name} Ready`, async () => {
    const node = await core.readNode({ name });
    return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
  });
}

function benchPod(node: string, prefix: string, i: number): V1Pod {
  const gpu = i % 2 === 0;
  return {
    metadata: {
      name: `${prefix}-${String(i).padStart(3, '0')}`,
      labels: { app: 'bench', gpu: String(gpu) },
    },
    spec: {
      nodeName: node,
      terminationGracePeriodSeconds: i % 3,
      containers: [
        {
          name: 'main',
          image: 'registry.invalid/noma/workload:1',
          ...(gpu
            ? {
                resources: {
                  requests: { 'nvidia.com/gpu': '1' },
                  limits: { 'nvidia.com/gpu': '1' },
                },
              }
            : {}),
        },
      ],
    },
  };
}

async function populate(
  core: CoreV1Api,
  namespace: string,
  node: string,
  prefix: string,
): Promise<void> {
  const limit = pLimit(16);
  await Promise.all(
    Array.from({ length: PODS }, (_, i) =>
      limit(() => core.createNamespacedPod({ namespace, body: benchPod(node, prefix, i) })),
    ),
  );
  await waitFor(
    `${PODS} pods Running on ${node}`,
    async () => {
      const list = await core.listNamespacedPod({
        namespace,
        fieldSelector: `spec.nodeName=${node}`,
      });
      return list.items.filter((p) => p.status?.phase === 'Running').length === PODS;
    },
    120_000,
  );
}

async function podsLeft(core: CoreV1Api, namespace: string, node: string): Promise<number> {
  const list = await core.listNamespacedPod({ namespace, fieldSelector: `spec.nodeName=${node}` });
  return list.items.length;
}

async function waitFor(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe().catch(() => false)) return;
    await sleep(250);
  }
  throw new Error(`timed out waiting for ${what}`);
}

// ---- the two contenders ----------------------------------------------------------------------

type RunTiming = Pick<Run, 'tool' | 'wallMs' | 'clientRequests'>;

interface Run {
  tool: 'noma' | 'kubectl';
  wallMs: number;
  /** Drain-client requests from the metrics, less the background. */
  requests: number;
  /** Drain-client requests from the metrics as diffed around the run. */
  rawRequests: number;
  /** The same series from other clients: their rate in idle windows around the run × its length. */
  background: number;
  allRequests: number;
  clientRequests: number;
  bySeries: Map<string, number>;
}

/** HTTP requests this process sends, counted client-side as a cross-check of the metrics. */
function countOwnRequests(): { stop: () => number } {
  let n = 0;
  const onStart = (): void => {
    n++;
  };
  subscribe('http.client.request.start', onStart);
  return {
    stop: () => {
      unsubscribe('http.client.request.start', onStart);
      return n;
    },
  };
}

async function runNoma(kc: KubeConfig, node: string): Promise<RunTiming> {
  const core = kc.makeApiClient(CoreV1Api);
  const counter = countOwnRequests();
  const t0 = performance.now();
  // The controller cordons before it drains; kubectl drain does both, so noma does too here.
  await core.patchNode(
    { name: node, body: { spec: { unschedulable: true } } },
    setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
  );
  const result = await drainNode(
    { kc, log },
    node,
    {
      drainNonGpuPods: true,
      deleteEmptyDirData: true,
      evictUnmanagedPods: true,
      timeoutMs: 120_000,
      forceDrain: false,
    },
    () => undefined,
    new AbortController().signal,
  );
  const wallMs = performance.now() - t0;
  const clientRequests = counter.stop();
  if (!result.ok) throw new Error(`noma drain failed: ${result.reason}`);
  return { tool: 'noma', wallMs, clientRequests };
}

async function runKubectl(kubeconfig: string, node: string): Promise<RunTiming> {
  const t0 = performance.now();
  // -v=6 logs one line per request: the client-side cross-check.
  const { stderr } = await exec(
    'kubectl',
    [
      '--kubeconfig',
      kubeconfig,
      'drain',
      node,
      '--ignore-daemonsets',
      '--delete-emptydir-data',
      '--force',
      '--timeout=120s',
      '-v=6',
    ],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  const wallMs = performance.now() - t0;
  const clientRequests = stderr
    .split('\n')
    .filter(
      (l) =>
        /round_trippers\.go.*"?(GET|POST|PATCH|PUT|DELETE)"? https?:\/\//.test(l) ||
        /\b(GET|POST|PATCH|PUT|DELETE) https?:\/\/\S+ \d{3}/.test(l),
    ).length;
  return { tool: 'kubectl', wallMs, clientRequests };
}

const IDLE_WINDOW_MS = 5000;

/** Drain-client requests per ms that other clients make while we do nothing. */
async function backgroundRate(): Promise<number> {
  const before = await requestCounters();
  await sleep(IDLE_WINDOW_MS);
  return diff(before, await requestCounters()).drain / IDLE_WINDOW_MS;
}

async function measured(fn: () => Promise<RunTiming>): Promise<Run> {
  // Other clients of this API server (tests running beside us, controllers) hit the same
  // series: measure their rate in idle windows just before and just after the run, and take
  // the mean rate times the run's length out.
  const rateBefore = await backgroundRate();
  const before = await requestCounters();
  const t0 = performance.now();
  const r = await fn();
  // Let in-flight counters settle (a watch is counted when it ends).
  await sleep(500);
  const d = diff(before, await requestCounters());
  const spanMs = performance.now() - t0;
  const rateAfter = await backgroundRate();
  const bg = Math.round(((rateBefore + rateAfter) / 2) * spanMs);
  return {
    ...r,
    rawRequests: d.drain,
    background: bg,
    requests: Math.max(0, d.drain - bg),
    allRequests: d.all,
    bySeries: d.bySeries,
  };
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? NaN) : ((s[mid - 1] ?? NaN) + (s[mid] ?? NaN)) / 2;
}

export default async function drainBench(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      rounds: { type: 'string', default: '1' },
      // A private control plane, so that no other client's requests reach its /metrics.
      isolated: { type: 'boolean', default: false },
    },
  });
  const rounds = Math.max(1, Number(values.rounds));
  const privateDir = values.isolated ? mkdtempSync(join(tmpdir(), 'noma-bench-drain-')) : undefined;
  const cluster = privateDir === undefined ? await up() : await up(privateDir);
  metricsKubeconfig = cluster.kubeconfig;
  const kc = new KubeConfig();
  kc.loadFromFile(cluster.kubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  const suffix = Math.random().toString(16).slice(2, 8);
  const namespace = `bench-drain-${suffix}`;
  const nodes: string[] = [];
  const runs: Run[] = [];
  try {
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    await waitFor('default ServiceAccount', () =>
      core.readNamespacedServiceAccount({ name: 'default', namespace }).then(() => true),
    );
    // Warm kubectl's discovery cache, as on any workstation that has used kubectl before.
    await exec('kubectl', ['--kubeconfig', cluster.kubeconfig, 'get', 'nodes', '-o', 'name']);
    const kubectlStart = performance.now();
    await exec('kubectl', ['version', '--client']);
    const kubectlStartupMs = performance.now() - kubectlStart;

    for (let round = 1; round <= rounds; round++) {
      const nomaNode = `bench-drain-${suffix}-noma-${round}`;
      const kubectlNode = `bench-drain-${suffix}-kubectl-${round}`;
      nodes.push(nomaNode, kubectlNode);
      await Promise.all([createNode(core, nomaNode), createNode(core, kubectlNode)]);
      await populate(core, namespace, nomaNode, `noma${round}`);
      await populate(core, namespace, kubectlNode, `kubectl${round}`);
      // Alternate who goes first so neither always meets the API server warm.
      const order =
        round % 2 === 1
          ? [
              () => measured(() => runNoma(kc, nomaNode)),
              () => measured(() => runKubectl(cluster.kubeconfig, kubectlNode)),
            ]
          : [
              () => measured(() => runKubectl(cluster.kubeconfig, kubectlNode)),
              () => measured(() => runNoma(kc, nomaNode)),
            ];
      for (const step of order) {
        const r = await step();
        runs.push(r);
        console.log(
          `round ${round} ${r.tool.padEnd(7)} wall ${(r.wallMs / 1000).toFixed(3)} s, ` +
            `requests ${r.requests} (${r.rawRequests} less ${r.background} background; ` +
            `client-side ${r.clientRequests}; all apiserver requests ${r.allRequests})`,
        );
      }
      for (const n of [nomaNode, kubectlNode]) {
        const left = await podsLeft(core, namespace, n);
        if (left !== 0) throw new Error(`${n}: ${left} pods left after the drain`);
      }
    }

    const of = (tool: Run['tool']): Run[] => runs.filter((r) => r.tool === tool);
    const noma = of('noma');
    const kubectl = of('kubectl');
    const wall = (rs: Run[]): number => median(rs.map((r) => r.wallMs));
    const reqs = (rs: Run[]): number => median(rs.map((r) => r.requests));
    const wallRatio = wall(noma) / wall(kubectl);
    const requestRatio = reqs(noma) / reqs(kubectl);

    console.log('');
    console.log(
      `${PODS} pods per node (50 requesting nvidia.com/gpu), grace 0–2 s; median of ${rounds} round(s)`,
    );
    console.log('');
    console.log(
      '| tool | wall (s) | requests (metrics less background) | metrics raw | background | client-side count | all apiserver requests |',
    );
    console.log('|---|---:|---:|---:|---:|---:|---:|');
    for (const [name, rs] of [
      ['noma', noma],
      ['kubectl drain', kubectl],
    ] as const) {
      console.log(
        `| ${name} | ${(wall(rs) / 1000).toFixed(3)} | ${reqs(rs)} | ${median(rs.map((r) => r.rawRequests))} | ` +
          `${median(rs.map((r) => r.background))} | ${median(rs.map((r) => r.clientRequests))} | ` +
          `${median(rs.map((r) => r.allRequests))} |`,
      );
    }
    console.log('');
    console.log('| ratio noma/kubectl | value | target |');
    console.log('|---|---:|---:|');
    console.log(`| wall time | ${wallRatio.toFixed(3)} | <= ${TARGET_WALL} |`);
    console.log(`| requests | ${requestRatio.toFixed(3)} | <= ${TARGET_REQUESTS} |`);
    console.log('');
    console.log(
      `kubectl process start-up alone (kubectl version --client): ${kubectlStartupMs.toFixed(0)} ms`,
    );
    for (const r of runs.slice(0, 2)) {
      const parts = [...r.bySeries].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}: ${v}`);
      console.log(`${r.tool} requests by verb/resource/code: ${parts.join(', ')}`);
    }
    const cordon = await measureCordonLatency({
      kc,
      kubeconfig: cluster.kubeconfig,
      namespace,
      createNode: (name) => createNode(core, name),
      samples: 10,
    });
    const cordonMs = median(cordon);
    console.log('');
    console.log(
      '| NodeMaintenance created → node cordoned (coordinator process, 10 samples) | ms |',
    );
    console.log('|---|---:|');
    console.log(`| median | ${cordonMs.toFixed(0)} |`);
    console.log(
      `| min / max | ${Math.min(...cordon).toFixed(0)} / ${Math.max(...cordon).toFixed(0)} |`,
    );
    console.log(`| target | <= 250 |`);
    console.log(
      `RESULT drain wall_ratio=${wallRatio.toFixed(3)} request_ratio=${requestRatio.toFixed(3)} cordon_ms=${cordonMs.toFixed(0)}`,
    );
  } finally {
    await core.deleteNamespace({ name: namespace }).catch(() => undefined);
    for (const name of nodes) await core.deleteNode({ name }).catch(() => undefined);
    if (privateDir !== undefined) {
      await down(privateDir);
      rmSync(privateDir, { recursive: true, force: true });
    }
  }
}
