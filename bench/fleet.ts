// fleet: N lightweight simulated agents (the real protocol over TLS, real node-bound
// ServiceAccount tokens checked by TokenReview) connected to one real coordinator process; one
// NodeMaintenance dispatches a Run to all of them. Prints, per N: time until every agent is
// connected; per node, the time from its Run reaching its agent (action.start) to its result
// (exit code and output tail) in status — p50 and the slowest node, the headline
// dispatch_to_status_s —; the time from the first Run dispatched to the last result in status
// (first_dispatch_to_all_s: this one also holds the spread of cordon and drain over N nodes);
// the same from the NodeMaintenance's creation; and the coordinator's RSS (idle, and its peak
// VmHWM) and CPU. The status is followed with a watch, as `kubectl get -w` would.
//   npm run bench -- fleet [--sizes 100,500,2000] [--isolated]
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs, promisify } from 'node:util';
import { CoreV1Api, CustomObjectsApi, KubeConfig, Watch } from '@kubernetes/client-node';
import pLimit from 'p-limit';
import WebSocket from 'ws';
import { GROUP, PLURAL, VERSION, type NodeMaintenance } from '../shared/api/index.js';
import {
  AGENT_LINK_PATH,
  COORDINATOR_SENDS,
  decodeFrame,
  encode,
  NODE_HEADER,
} from '../shared/protocol.js';
import { down, up } from '../test/cluster/cluster.js';
import { installCRD } from '../test/support/crd.js';
import { startCoordinator, type CoordinatorProcess } from '../test/support/coordinator-process.js';
import {
  AGENT_SA,
  ensureServiceAccount,
  freePort,
  nodeBoundToken,
  writeLinkTls,
} from '../test/support/link.js';

const CLK_TCK = 100;
const DEPLOYMENT = new URL('../deploy/coordinator-deployment.yaml', import.meta.url);

interface ProcSample {
  rssMiB: number;
  /** VmHWM: the highest RSS since the process started. */
  peakMiB: number;
  cpuS: number;
}

function sample(pid: number): ProcSample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const hwmKiB = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  // Fields after the command name (which may contain spaces): utime is the 14th field overall.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(rest[11]) + Number(rest[12]);
  return { rssMiB: rssKiB / 1024, peakMiB: hwmKiB / 1024, cpuS: ticks / CLK_TCK };
}

/** Per node of one run (performance.now()): its agent got the Run; its result was in status. */
interface Timeline {
  readonly dispatchedAt: Map<string, number>;
  readonly inStatusAt: Map<string, number>;
}

/** A simulated agent: hello, then answer every Run with a result, as the real agent would. */
function simAgent(
  url: string,
  ca: Buffer,
  node: string,
  token: string,
  timeline: Timeline,
): Promise<{ ws: WebSocket; connectedMs: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url}${AGENT_LINK_PATH}`, {
      ca,
      headers: { authorization: `Bearer ${token}`, [NODE_HEADER]: node },
      perMessageDeflate: false,
      handshakeTimeout: 60_000,
    });
    ws.on('error', reject);
    ws.on('unexpected-response', (_req, res) => {
      reject(
        new Error(`${node}: HTTP ${res.statusCode ?? 0} ${String(res.headers['x-noma-reason'])}`),
      );
    });
    ws.on('open', () => {
      ws.send(
        encode('hello', {
          node,
          bootID: `boot-${node}`,
          version: 'bench',
          inventory: { driver: 'present', gpus: [] },
          actions: [],
        }),
      );
    });
    const done = new Set<string>();
    ws.on('message', (data: Buffer) => {
      const d = decodeFrame(data.toString('utf8'), COORDINATOR_SENDS);
      if (!d.ok) return;
      const msg = d.message;
      if (msg.type === 'welcome') resolve({ ws, connectedMs: performance.now() - t0 });
      if (msg.type === 'action.start') {
        if (!timeline.dispatchedAt.has(node)) timeline.dispatchedAt.set(node, performance.now());
        const startedAt = new Date().toISOString();
        done.add(msg.id);
        ws.send(
          encode('action.result', {
            id: msg.id,
            outcome: 'succeeded',
            exitCode: 0,
            outputTail: `ran on ${node}\n`,
            message: 'exit code 0',
            startedAt,
            finishedAt: new Date().toISOString(),
          }),
        );
      }
    });
  });
}

/** Counts the nodes whose result is in the status. */
const resultsIn = (m: NodeMaintenance, inStatusAt: Map<string, number>): number => {
  const now = performance.now();
  let n = 0;
  for (const s of m.status?.nodes ?? []) {
    if (s.phase !== 'Succeeded' || s.lastExitCode !== 0 || s.outputTail === undefined) continue;
    n++;
    if (!inStatusAt.has(s.name)) inStatusAt.set(s.name, now);
  }
  return n;
};

/**
 * Follows the NodeMaintenance with a watch until every node's result is in its status, with a
 * read every 2 s besides: the API server may drop a watcher that falls behind on an object of
 * nearly 1 MiB, and client-node's Watch does not always say so.
 */
async function allResultsIn(
  kc: KubeConfig,
  ns: string,
  name: string,
  n: number,
  timeline: Timeline,
): Promise<void> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  let done = 0;
  let finished = false;
  let req: AbortController | undefined;
  await new Promise<void>((resolve, reject) => {
    const deadline = setTimeout(() => {
      finish(new Error(`only ${done}/${n} results after 15 min`));
    }, 15 * 60_000);
    const poll = setInterval(() => {
      custom
        .getNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          plural: PLURAL,
          namespace: ns,
          name,
        })
        .then((m: NodeMaintenance) => {
          seen(m);
        })
        .catch(() => undefined);
    }, 2_000);
    function finish(err?: Error): void {
      if (finished) return;
      finished = true;
      clearTimeout(deadline);
      clearInterval(poll);
      req?.abort();
      if (err === undefined) resolve();
      else reject(err);
    }
    function seen(m: NodeMaintenance): void {
      done = Math.max(done, resultsIn(m, timeline.inStatusAt));
      if (done === n) finish();
      else if (m.status?.phase === 'Failed') {
        finish(new Error(`maintenance failed: ${JSON.stringify(m.status.conditions)}`));
      }
    }
    const start = (): void => {
      if (finished) return;
      void new Watch(kc)
        .watch(
          `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${PLURAL}`,
          { fieldSelector: `metadata.name=${name}` },
          (_type: string, obj: NodeMaintenance) => {
            seen(obj);
          },
          // The server closes watches now and then: follow on from a fresh list.
          () => {
            start();
          },
        )
        .then(
          (c) => (req = c),
          () => setTimeout(start, 1_000),
        );
    };
    start();
  });
}

async function runSize(
  n: number,
  kubeconfig: string,
): Promise<{
  connectS: number;
  dispatchS: number;
  p50S: number;
  firstToAllS: number;
  createdS: number;
  idle: ProcSample;
  peakRss: number;
  cpuS: number;
}> {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const id = Math.random().toString(16).slice(2, 8);
  const ns = `bench-fleet-${id}`;
  const nodes = Array.from({ length: n }, (_, i) => `fleet-${id}-${String(i).padStart(4, '0')}`);
  const limit = pLimit(16);
  const tls = await writeLinkTls();
  let coordinator: CoordinatorProcess | undefined;
  const sockets: WebSocket[] = [];
  try {
    await core.createNamespace({ body: { metadata: { name: ns } } });
    await ensureServiceAccount(kc, ns);
    const t0 = performance.now();
    const tokens = await Promise.all(
      nodes.map((name) =>
        limit(async () => {
          await core.createNode({
            body: {
              metadata: {
                name,
                annotations: { 'kwok.x-k8s.io/node': 'fake' },
                labels: { 'kubernetes.io/hostname': name, 'noma.dev/bench': id },
              },
              status: {
                capacity: { cpu: '8', memory: '64Gi', pods: '110' },
                allocatable: { cpu: '8', memory: '64Gi', pods: '110' },
              },
            },
          });
          return nodeBoundToken(kc, ns, name);
        }),
      ),
    );
    console.log(
      `  n=${n}: ${n} nodes, pods and tokens in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    const port = await freePort();
    // Run as deploy/ runs it: with the Deployment's NODE_OPTIONS (its V8 heap bound).
    const deployment = readFileSync(DEPLOYMENT, 'utf8');
    const nodeOptions = /name: NODE_OPTIONS\s+value: (.+)/.exec(deployment)?.[1]?.trim();
    coordinator = await startCoordinator(
      kubeconfig,
      [
        '--namespace',
        ns,
        '--watch-namespace',
        ns,
        '--lease-name',
        `fleet-${id}`,
        '--agent-port',
        String(port),
        '--agent-tls-cert',
        tls.certFile,
        '--agent-tls-key',
        tls.keyFile,
        '--agent-service-account',
        `${ns}/${AGENT_SA}`,
        '--max-selected-nodes',
        String(n),
        '--max-nodes-in-maintenance',
        String(n),
        '--status-interval',
        '1s',
        // All N simulated agents come from this one address, and connect 64 at a time: the
        // link's upgrade limits (per address, and authenticating at once) are sized for them.
        ...['--agent-upgrade-rate', String(Math.max(10, n)), '--agent-max-authenticating', '64'],
      ],
      60_000,
      true,
      nodeOptions === undefined ? {} : { NODE_OPTIONS: nodeOptions },
    );
    const pid = coordinator.proc.pid ?? 0;
    const ca = readFileSync(tls.caFile);
    const url = `wss://localhost:${port}`;
    const c0 = performance.now();
    const timeline: Timeline = { dispatchedAt: new Map(), inStatusAt: new Map() };
    const connectLimit = pLimit(64);
    const agents = await Promise.all(
      nodes.map((node, i) =>
        connectLimit(() => simAgent(url, ca, node, tokens[i] ?? '', timeline)),
      ),
    );
    const connectS = (performance.now() - c0) / 1000;
    sockets.push(...agents.map((a) => a.ws));
    await sleep(2_000);
    const idle = sample(pid);

    const name = `fleet-${id}`;
    const cpu0 = sample(pid).cpuS;
    const d0 = performance.now();
    await custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      namespace: ns,
      body: {
        apiVersion: `${GROUP}/${VERSION}`,
        kind: 'NodeMaintenance',
        metadata: { name },
        spec: {
          operationName: 'bench-fleet',
          linearTicket: 'ENG-5',
          nodeSelector: `noma.dev/bench=${id}`,
          actions: [{ type: 'Run', run: { command: ['nvidia-smi', '-L'] } }],
        },
      },
    });
    let peakRss = idle.rssMiB;
    const rssTimer = setInterval(() => {
      peakRss = Math.max(peakRss, sample(pid).rssMiB);
    }, 250);
    try {
      await allResultsIn(kc, ns, name, n, timeline);
    } finally {
      clearInterval(rssTimer);
    }
    const allIn = performance.now();
    const createdS = (allIn - d0) / 1000;
    const firstToAllS = (allIn - Math.min(...timeline.dispatchedAt.values(), allIn)) / 1000;
    // Each node: from its Run reaching its agent to its result in status.
    const latencies = [...timeline.inStatusAt]
      .map(([node, at]) => (at - (timeline.dispatchedAt.get(node) ?? d0)) / 1000)
      .sort((a, b) => a - b);
    const dispatchS = latencies.at(-1) ?? NaN;
    const p50S = latencies[Math.floor(latencies.length / 2)] ?? NaN;
    // What went wrong along the way (retries, dropped events) says where the time went.
    const warnings = new Map<string, number>();
    for (const line of coordinator.logs) {
      const m = /"level":(\d+).*"msg":"([^"]*)"/.exec(line);
      if (m?.[2] !== undefined && Number(m[1]) >= 40) {
        warnings.set(m[2], (warnings.get(m[2]) ?? 0) + 1);
      }
    }
    if (warnings.size > 0)
      console.log(`  n=${n}: coordinator warnings`, Object.fromEntries(warnings));
    // Where the memory is: the JS heap, and what lives outside it (TLS and socket buffers).
    const metrics = await fetch(`${coordinator.baseUrl}/metrics`).then((r) => r.text());
    const gauge = (name: string) =>
      Number(new RegExp(`^noma_coordinator_${name} (\\S+)$`, 'm').exec(metrics)?.[1] ?? NaN) /
      2 ** 20;
    console.log(
      `  n=${n}: after: heap used ${gauge('nodejs_heap_size_used_bytes').toFixed(0)} MiB of ` +
        `${gauge('nodejs_heap_size_total_bytes').toFixed(0)}, external ` +
        `${gauge('nodejs_external_memory_bytes').toFixed(0)} MiB`,
    );
    const end = sample(pid);
    const cpuS = end.cpuS - cpu0;
    peakRss = Math.max(peakRss, end.peakMiB);
    return { connectS, dispatchS, p50S, firstToAllS, createdS, idle, peakRss, cpuS };
  } finally {
    // Deleted while its coordinator still runs, so that its finalizer goes and the namespace
    // can go too.
    await custom
      .deleteNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
        namespace: ns,
        name: `fleet-${id}`,
      })
      .catch(() => undefined);
    const gone = Date.now() + 30_000;
    while (Date.now() < gone) {
      const still = await custom
        .getNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          plural: PLURAL,
          namespace: ns,
          name: `fleet-${id}`,
        })
        .then(
          () => true,
          () => false,
        );
      if (!still) break;
      await sleep(500);
    }
    for (const ws of sockets) ws.terminate();
    await coordinator?.kill('SIGTERM');
    await core.deleteNamespace({ name: ns }).catch(() => undefined);
    await Promise.all(
      nodes.map((name) => limit(() => core.deleteNode({ name }).catch(() => undefined))),
    );
    rmSync(tls.dir, { recursive: true, force: true });
  }
}

export default async function fleet(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      sizes: { type: 'string', default: '100,500,2000' },
      isolated: { type: 'boolean', default: false },
    },
  });
  const sizes = values.sizes.split(',').map(Number);
  if (sizes.some((s) => !Number.isInteger(s) || s < 1)) throw new Error('--sizes: e.g. 100,500');
  const privateDir = values.isolated ? mkdtempSync(join(tmpdir(), 'noma-bench-fleet-')) : undefined;
  const cluster = privateDir === undefined ? await up() : await up(privateDir);
  // The coordinator runs from dist, as it does in production: build it first.
  await promisify(execFile)(process.execPath, [
    'node_modules/typescript/bin/tsc',
    '-p',
    'tsconfig.build.json',
  ]);
  const rows: string[] = [];
  let last: { n: number; dispatchS: number; firstToAllS: number; rss: number } | undefined;
  try {
    const kc = new KubeConfig();
    kc.loadFromFile(cluster.kubeconfig);
    await installCRD(kc);
    for (const n of sizes) {
      const r = await runSize(n, cluster.kubeconfig);
      rows.push(
        `| ${n} | ${r.connectS.toFixed(2)} | ${r.p50S.toFixed(2)} | ${r.dispatchS.toFixed(2)} | ${r.firstToAllS.toFixed(2)} | ${r.createdS.toFixed(2)} | ${r.idle.rssMiB.toFixed(0)} | ${r.peakRss.toFixed(0)} | ${r.cpuS.toFixed(1)} |`,
      );
      last = { n, dispatchS: r.dispatchS, firstToAllS: r.firstToAllS, rss: r.peakRss };
      console.log(`  n=${n}: ${rows.at(-1) ?? ''}`);
    }
  } finally {
    if (privateDir !== undefined) {
      await down(privateDir);
      rmSync(privateDir, { recursive: true, force: true });
    }
  }
  console.log('');
  console.log(
    '| agents | connect all (s) | Run dispatched → its result in status, p50 (s) | same, slowest node (s) | first Run dispatched → every result in status (s) | NodeMaintenance created → every result in status (s) | coordinator RSS idle (MiB) | RSS peak, VmHWM (MiB) | coordinator CPU, created → all in (s) |',
  );
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const row of rows) console.log(row);
  if (last !== undefined) {
    console.log(
      `RESULT fleet n=${last.n} dispatch_to_status_s=${last.dispatchS.toFixed(2)} first_dispatch_to_all_s=${last.firstToAllS.toFixed(2)} coordinator_rss_mib=${last.rss.toFixed(0)}`,
    );
  }
}
