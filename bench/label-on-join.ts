// label-on-join: time from starting the agent process to all of its labels being on the Node
// (real API server, instant fake nvidia-smi), median of N runs; then the agent's resident
// memory after it has idled for a while. Targets: median <= 1.5 s, idle RSS <= 80 MiB.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';
import { CoreV1Api, KubeConfig, Watch, type V1Node } from '@kubernetes/client-node';
import { computeLabels } from '../agent/labels/compute.js';
import { DEFAULT_RULES } from '../agent/labels/rules.js';
import { parseGpuCsv } from '../agent/discovery/nvidia-smi.js';
import { down, up } from '../test/cluster/cluster.js';
import { startAgent, type AgentProcess } from '../test/support/agent-process.js';
import { fixtureOutput } from '../test/support/nvidia-smi.js';

const FIXTURE = 'rtx5070-rtx3050.csv';
const TARGET_MEDIAN_S = 1.5;
const TARGET_RSS_MIB = 80;

function expectedLabels(nodeName: string): Record<string, string> {
  const parsed = parseGpuCsv(fixtureOutput(FIXTURE));
  if (!parsed.ok) throw new Error(parsed.error);
  return computeLabels({ nodeName, gpus: parsed.gpus }, DEFAULT_RULES);
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? NaN) : ((s[mid - 1] ?? NaN) + (s[mid] ?? NaN)) / 2;
}

/** Resolves with the time (performance.now()) at which the Node first carried every label. */
async function whenLabelled(
  kc: KubeConfig,
  name: string,
  want: Record<string, string>,
): Promise<{ done: Promise<number>; cancel: () => void }> {
  let resolve: (t: number) => void = () => undefined;
  let reject: (e: unknown) => void = () => undefined;
  const done = new Promise<number>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const complete = (node: V1Node): boolean => {
    const labels = node.metadata?.labels ?? {};
    return Object.entries(want).every(([k, v]) => labels[k] === v);
  };
  const node = await kc.makeApiClient(CoreV1Api).readNode({ name });
  const controller = await new Watch(kc).watch(
    '/api/v1/nodes',
    { fieldSelector: `metadata.name=${name}`, resourceVersion: node.metadata?.resourceVersion },
    (_phase, obj: V1Node) => {
      if (complete(obj)) resolve(performance.now());
    },
    (err: unknown) => {
      if (err !== null && err !== undefined) reject(err);
    },
  );
  return {
    done,
    cancel: () => {
      controller.abort();
    },
  };
}

async function createNode(core: CoreV1Api, name: string): Promise<void> {
  await core.createNode({
    body: {
      metadata: {
        name,
        annotations: { 'kwok.x-k8s.io/node': 'fake' },
        labels: { 'kubernetes.io/hostname': name, 'noma.dev/bench': 'true' },
      },
    },
  });
}

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
  if (kb === undefined) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(kb) / 1024;
}

export default async function labelOnJoin(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { runs: { type: 'string', default: '10' }, idle: { type: 'string', default: '60' } },
  });
  const runs = Number(values.runs);
  const idleS = Number(values.idle);

  console.log('building dist/ …');
  await promisify(execFile)(process.execPath, [
    'node_modules/typescript/bin/tsc',
    '-p',
    'tsconfig.build.json',
  ]);
  const cluster = await up();
  const kc = new KubeConfig();
  kc.loadFromFile(cluster.kubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  const suffix = Math.random().toString(16).slice(2, 8);
  const rows: { run: number; seconds: number }[] = [];
  let idleAgent: AgentProcess | undefined;
  const nodes: string[] = [];
  try {
    for (let i = 1; i <= runs; i++) {
      const name = `bench-join-${suffix}-${i}`;
      nodes.push(name);
      await createNode(core, name);
      const watch = await whenLabelled(kc, name, expectedLabels(name));
      const t0 = performance.now();
      const agent = await startAgent({
        nodeName: name,
        kubeconfig: cluster.kubeconfig,
        fixture: FIXTURE,
        fromDist: true,
      });
      const t1 = await Promise.race([
        watch.done,
        sleep(30_000).then(() => Promise.reject(new Error(`run ${i}: no labels after 30 s`))),
      ]);
      watch.cancel();
      rows.push({ run: i, seconds: (t1 - t0) / 1000 });
      console.log(`run ${String(i).padStart(2)}: ${((t1 - t0) / 1000).toFixed(3)} s`);
      if (i === runs) idleAgent = agent;
      else await agent.stop();
    }
    if (idleAgent?.proc.pid === undefined) throw new Error('no agent left to measure');
    console.log(`letting the last agent idle for ${idleS} s …`);
    await sleep(idleS * 1000);
    const rss = await rssMiB(idleAgent.proc.pid);
    const med = median(rows.map((r) => r.seconds));

    console.log('');
    console.log('| run | start → all labels on Node (s) |');
    console.log('|----:|------------------------------:|');
    for (const r of rows)
      console.log(`| ${String(r.run).padStart(3)} | ${r.seconds.toFixed(3).padStart(29)} |`);
    console.log('');
    console.log('| metric | value | target |');
    console.log('|---|---:|---:|');
    console.log(`| median time to labels | ${med.toFixed(3)} s | <= ${TARGET_MEDIAN_S} s |`);
    console.log(
      `| min / max | ${Math.min(...rows.map((r) => r.seconds)).toFixed(3)} / ${Math.max(...rows.map((r) => r.seconds)).toFixed(3)} s | |`,
    );
    console.log(`| idle RSS after ${idleS} s | ${rss.toFixed(1)} MiB | <= ${TARGET_RSS_MIB} MiB |`);
    console.log(`RESULT label-on-join median_s=${med.toFixed(3)} rss_mib=${rss.toFixed(1)}`);
  } finally {
    await idleAgent?.stop();
    for (const name of nodes) await core.deleteNode({ name }).catch(() => undefined);
    if (cluster.started) await down();
  }
}
