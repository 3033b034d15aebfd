// The agent link end to end: a real coordinator and real agent processes (local executor, one
// per simulated node) against the real API server, node-bound ServiceAccount tokens checked by
// TokenReview. Maintenances with Script, Reboot and Run; failures, timeouts, cancel, and each
// side killed mid-action.
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import {
  afterAll,
  beforeAll,
  beforeEach,
  describe,
  expect,
  inject,
  it,
  onTestFailed,
} from 'vitest';
import WebSocket from 'ws';
import { AGENT_LINK_PATH, NODE_HEADER, encode } from '../../shared/protocol.js';
import { startAgent, type AgentProcess } from '../support/agent-process.js';
import { startCoordinator, type CoordinatorProcess } from '../support/coordinator-process.js';
import { alive } from '../cluster/cluster.js';
import { daemonSetBoundTokens } from '../support/agent-daemonset.js';
import { installCRD } from '../support/crd.js';
import { maintenances, nodeStatus } from '../support/maintenance.js';
import {
  adminKubeConfig,
  createNamespace,
  createSimNode,
  deleteSimNode,
  mintServiceAccountToken,
  simulateReboot,
  uniqueName,
  waitFor,
} from '../support/kube.js';
import {
  AGENT_SA,
  ensureServiceAccount,
  freePort,
  nodeBoundToken,
  writeLinkTls,
  type LinkTls,
} from '../support/link.js';
import { SimulatedMachine } from '../support/machine.js';

const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
let ns: Awaited<ReturnType<typeof createNamespace>>;
let tls: LinkTls;
let coordinator: CoordinatorProcess;
let agentPort: number;
const leaseName = uniqueName('lease-link');
const cleanups: (() => Promise<unknown>)[] = [];

const coordinatorArgs = (): string[] => [
  '--namespace',
  ns.name,
  '--watch-namespace',
  ns.name,
  '--lease-name',
  leaseName,
  '--identity',
  'link-coordinator',
  '--lease-duration',
  '2s',
  '--status-interval',
  '200ms',
  '--agent-port',
  String(agentPort),
  '--agent-tls-cert',
  tls.certFile,
  '--agent-tls-key',
  tls.keyFile,
  '--agent-service-account',
  `${ns.name}/${AGENT_SA}`,
  '--agent-heartbeat',
  '1s',
  '--agent-retry',
  '500ms',
];

const coordinatorUrl = (): string => `wss://localhost:${agentPort}`;

beforeAll(async () => {
  await installCRD(kc);
  ns = await createNamespace('link');
  tls = await writeLinkTls();
  agentPort = await freePort();
  await ensureServiceAccount(kc, ns.name);
  coordinator = await startCoordinator(inject('kubeconfig'), coordinatorArgs());
});

afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  await coordinator.kill('SIGTERM');
  await ns.remove();
});

interface LinkedNode {
  name: string;
  token: string;
  tokenFile: string;
  /** State and work dir of the agent; survives agent restarts. */
  home: string;
  workDir: string;
  /** The current agent process: the machine replaces it when it reboots. */
  agent: AgentProcess;
  machine: SimulatedMachine;
}

type NodeHome = Omit<LinkedNode, 'agent' | 'machine'>;

async function startLinkedAgent(n: NodeHome): Promise<AgentProcess> {
  const agent = await startAgent({
    nodeName: n.name,
    kubeconfig: inject('kubeconfig'),
    fixture: 'l4.csv',
    args: [
      '--state-dir',
      join(n.home, 'state'),
      '--work-dir',
      n.workDir,
      '--coordinator-url',
      coordinatorUrl(),
      '--coordinator-ca',
      tls.caFile,
      '--token-file',
      n.tokenFile,
      '--executor',
      'local',
      '--boot-id-file',
      join(n.home, 'boot_id'),
      '--reboot-request-file',
      join(n.home, 'reboot-request'),
      '--coordinator-unreachable-threshold',
      '3s',
    ],
  });
  onTestFailed(() => {
    console.log(`--- agent ${n.name} ---\n${agent.logs.slice(-60).join('\n')}`);
  });
  cleanups.push(() => agent.stop());
  return agent;
}

/**
 * A simulated node with its machine (test/support/machine.ts: the agent asks it for a reboot;
 * it stops the agent, reports a new bootID as the admin, as a kubelet would, and starts the
 * agent again) and, unless `start: false`, its agent.
 */
async function linkedNode(prefix: string, opts: { start?: boolean } = {}): Promise<LinkedNode> {
  const name = uniqueName(prefix);
  const created = await createSimNode(name, { capacity: { 'nvidia.com/gpu': '1' } });
  cleanups.push(() => deleteSimNode(name));
  // Bound to a DaemonSet pod, as deploy/'s agents are: the drain before a Reboot leaves
  // DaemonSet pods alone, where a bare pod would block it as unmanaged.
  const tokens = await daemonSetBoundTokens(
    kc,
    ns.name,
    `agent-${name}`,
    {
      'kubernetes.io/hostname': name,
    },
    [name],
  );
  const token = tokens.get(name) ?? '';
  const home = await mkdtemp(join(tmpdir(), `noma-${name}-`));
  const tokenFile = join(home, 'token');
  await writeFile(tokenFile, token);
  const base: NodeHome = { name, token, tokenFile, home, workDir: join(home, 'work') };
  await mkdir(base.workDir, { recursive: true });
  const node: LinkedNode = {
    ...base,
    agent: undefined as unknown as AgentProcess,
    machine: new SimulatedMachine({
      bootIdFile: join(home, 'boot_id'),
      rebootRequestFile: join(home, 'reboot-request'),
      reportBootID: (bootID) => simulateReboot(name, bootID),
      stopAgent: () => node.agent.stop(),
      startAgent: async () => {
        node.agent = await startLinkedAgent(base);
      },
      pollMs: 100,
      downMs: 200,
    }),
  };
  // The agent's boot ID is the Node's, as on a real machine.
  await node.machine.start(created.status?.nodeInfo?.bootID ?? '');
  cleanups.push(() => node.machine.close());
  if (opts.start !== false) node.agent = await startLinkedAgent(base);
  return node;
}

async function agentsConnected(): Promise<string[]> {
  const res = await fetch(`${coordinator.baseUrl}/agents`);
  const body = (await res.json()) as { agents: { node: string }[] };
  return body.agents.map((a) => a.node);
}

async function waitConnected(nodes: string[]): Promise<void> {
  await waitFor(`agents ${nodes.join(',')} connected`, async () => {
    const connected = await agentsConnected();
    return nodes.every((n) => connected.includes(n));
  });
}

function createMaintenance(
  name: string,
  nodes: string[],
  ...rest: [Record<string, unknown>[]] | [Record<string, unknown>, Record<string, unknown>[]]
) {
  const [options, actions] = rest.length === 1 ? [undefined, rest[0]] : rest;
  return maintenances(kc, ns.name).create(name, {
    linearTicket: 'ENG-5',
    nodeSelector: `kubernetes.io/hostname in (${nodes.join(',')})`,
    ...(options === undefined ? {} : { options }),
    actions,
  });
}

const getMaintenance = (name: string) => maintenances(kc, ns.name).get(name);

const waitPhase = (name: string, phase: string | readonly string[], timeoutMs?: number) =>
  maintenances(kc, ns.name).waitPhase(name, phase, timeoutMs);

const bootIDOf = async (node: string): Promise<string> =>
  (await core.readNode({ name: node })).status?.nodeInfo?.bootID ?? '';

beforeEach(() => {
  onTestFailed(() => {
    console.log(`--- coordinator ---\n${coordinator.logs.slice(-80).join('\n')}`);
  });
});

describe('agent link', () => {
  it('runs Script → Reboot → Run → Complete on three nodes; a failing script fails only its node', async () => {
    const nodes = await Promise.all([linkedNode('lk-a'), linkedNode('lk-b'), linkedNode('lk-c')]);
    const names = nodes.map((n) => n.name);
    await waitConnected(names);
    const before = await Promise.all(names.map(bootIDOf));
    const [, , failing] = nodes;
    await writeFile(join(failing.workDir, 'fail-here'), '');

    const name = uniqueName('e2e');
    // maxFailedNodes 2: the failing node must not halt the others.
    await createMaintenance(name, names, { maxFailedNodes: 2 }, [
      {
        type: 'Script',
        script: {
          script: 'echo "script on $1"; if [ -e fail-here ]; then echo boom >&2; exit 3; fi',
          args: ['arg-one'],
        },
      },
      { type: 'Reboot', timeout: '1m' },
      { type: 'Run', run: { command: ['echo', 'after'], args: ['reboot'] } },
      { type: 'Complete' },
    ]);
    const m = await waitPhase(name, ['Completed', 'Failed'], 60_000);
    expect(m.status?.phase).toBe('Failed');
    for (const [i, n] of nodes.slice(0, 2).entries()) {
      const s = nodeStatus(m, n.name);
      expect(s?.phase).toBe('Succeeded');
      expect(s?.lastExitCode).toBe(0);
      expect(s?.outputTail).toBe('after reboot\n');
      expect(s?.bootIDBeforeReboot).toBe(before[i]);
      expect(await bootIDOf(n.name)).not.toBe(before[i]);
      // Rebooted once by its machine, the agent stopped and started again: the agent itself
      // never wrote the Node's status.
      expect(n.machine.reboots).toBe(1);
      expect(await readFile(join(n.home, 'boot_id'), 'utf8')).toBe(`${await bootIDOf(n.name)}\n`);
      const node = await core.readNode({ name: n.name });
      expect(node.spec?.unschedulable ?? false).toBe(false);
    }
    const f = nodeStatus(m, failing.name);
    expect(f?.phase).toBe('Failed');
    expect(f?.lastExitCode).toBe(3);
    expect(f?.outputTail).toContain('script on arg-one');
    expect(f?.outputTail).toContain('boom');
    expect(f?.message).toMatch(/exit code 3/);
    // The failed node was not rebooted.
    expect(await bootIDOf(failing.name)).toBe(before[2]);
    expect(failing.machine.reboots).toBe(0);

    const agents = (await (await fetch(`${coordinator.baseUrl}/agents`)).json()) as {
      agents: { node: string; version: string; bootID: string; inventory: unknown }[];
    };
    const a = agents.agents.find((x) => x.node === names[0]);
    expect(a?.version).not.toBe('');
    expect(a?.inventory).not.toBeNull();
    const metrics = await (await fetch(`${coordinator.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/^noma_agents_connected \d+/m);
  });

  it('fails an action that runs past its timeout, and kills it', async () => {
    const n = await linkedNode('lk-to');
    await waitConnected([n.name]);
    const name = uniqueName('timeout');
    await createMaintenance(
      name,
      [n.name],
      [
        {
          type: 'Script',
          timeout: '1s',
          script: { script: 'echo $$ > pid; echo started; sleep 60; echo never' },
        },
      ],
    );
    const m = await waitPhase(name, ['Failed']);
    const s = nodeStatus(m, n.name);
    expect(s?.message).toMatch(/TimedOut/);
    expect(s?.outputTail).toBe('started\n');
    const pid = Number(await readFile(join(n.workDir, 'pid'), 'utf8'));
    await waitFor('timed-out script gone', () => Promise.resolve(!alive(pid)), 10_000);
  });

  it('cancels the script when the NodeMaintenance is deleted', async () => {
    const n = await linkedNode('lk-cancel');
    await waitConnected([n.name]);
    const name = uniqueName('cancel');
    await createMaintenance(
      name,
      [n.name],
      [{ type: 'Script', script: { script: 'echo $$ > pid; sleep 300 & echo $! > child; wait' } }],
    );
    const childFile = join(n.workDir, 'child');
    await waitFor('script running', () => Promise.resolve(existsSync(childFile)), 30_000);
    const pid = Number(await readFile(join(n.workDir, 'pid'), 'utf8'));
    const child = Number(await readFile(childFile, 'utf8'));
    expect(alive(pid)).toBe(true);
    await maintenances(kc, ns.name).remove(name);
    await waitFor('maintenance gone', async () => (await getMaintenance(name)) === undefined);
    await waitFor(
      'script and its child gone',
      () => Promise.resolve(!alive(pid) && !alive(child)),
      10_000,
    );
    const node = await core.readNode({ name: n.name });
    expect(node.spec?.unschedulable ?? false).toBe(false);
  });

  it('does not run the script again when the coordinator is killed mid-action; the result lands', async () => {
    const n = await linkedNode('lk-ckill');
    await waitConnected([n.name]);
    const name = uniqueName('ckill');
    await createMaintenance(
      name,
      [n.name],
      [{ type: 'Script', script: { script: 'echo run >> runs.log; sleep 4; echo done' } }],
    );
    const runs = join(n.workDir, 'runs.log');
    await waitFor('script started', () => Promise.resolve(existsSync(runs)), 30_000);
    await coordinator.kill('SIGKILL');
    coordinator = await startCoordinator(inject('kubeconfig'), coordinatorArgs());
    const m = await waitPhase(name, ['Completed', 'Failed'], 45_000);
    const s = nodeStatus(m, n.name);
    expect(s?.phase).toBe('Succeeded');
    expect(s?.outputTail).toBe('done\n');
    expect(s?.lastExitCode).toBe(0);
    expect(await readFile(runs, 'utf8')).toBe('run\n');
  });

  it('keeps a script running when its agent is killed; the next agent reports it, run once', async () => {
    const n = await linkedNode('lk-akill');
    await waitConnected([n.name]);
    const name = uniqueName('akill');
    await createMaintenance(
      name,
      [n.name],
      [{ type: 'Script', script: { script: 'echo run >> runs.log; sleep 3; echo done' } }],
    );
    const runs = join(n.workDir, 'runs.log');
    await waitFor('script started', () => Promise.resolve(existsSync(runs)), 30_000);
    n.agent.signal('SIGKILL');
    await new Promise((r) => setTimeout(r, 500));
    n.agent = await startLinkedAgent(n);
    const m = await waitPhase(name, ['Completed', 'Failed'], 45_000);
    const s = nodeStatus(m, n.name);
    expect(s?.phase).toBe('Succeeded');
    expect(s?.outputTail).toBe('done\n');
    // Give a wrongly re-run script the time to show up.
    await new Promise((r) => setTimeout(r, 1_000));
    expect(await readFile(runs, 'utf8')).toBe('run\n');
  });

  it('waits for an agent that is not connected, and runs once it connects', async () => {
    const n = await linkedNode('lk-late', { start: false });
    const name = uniqueName('late');
    await createMaintenance(name, [n.name], [{ type: 'Run', run: { command: ['echo', 'hi'] } }]);
    await waitFor('waiting for the agent', async () => {
      const m = await getMaintenance(name);
      return m?.status?.nodes?.[0]?.message?.includes('no agent connected') === true;
    });
    const agent = await startLinkedAgent(n);
    const ready = await waitFor('agent ready with the link', async () => {
      const r = await agent.get('/readyz');
      return r.status === 200 ? r : undefined;
    });
    expect(ready.body).toMatchObject({ checks: { coordinator: { ok: true } } });
    const m = await waitPhase(name, ['Completed', 'Failed']);
    expect(nodeStatus(m, n.name)).toMatchObject({ phase: 'Succeeded', outputTail: 'hi\n' });
  });

  it('replaces the first connection of a node by the second, and reconnects after a drop', async () => {
    const n = await linkedNode('lk-dup');
    await waitConnected([n.name]);
    // A second client with the same node's token: it takes over, the agent is dropped and
    // reconnects (and in turn replaces the intruder).
    const ws = new WebSocket(`${coordinatorUrl()}${AGENT_LINK_PATH}`, {
      ca: await readFile(tls.caFile),
      headers: { authorization: `Bearer ${n.token}` },
    });
    ws.on('error', () => undefined);
    const closed = new Promise<number>((r) =>
      ws.on('close', (code) => {
        r(code);
      }),
    );
    await new Promise((r) => ws.once('open', r));
    ws.send(
      encode('hello', { node: n.name, bootID: 'x', version: 'test', inventory: null, actions: [] }),
    );
    expect(await closed).toBe(4001);
    await waitConnected([n.name]);
    const status = (await n.agent.get('/status')).body as { link: { connected: boolean } };
    expect(status.link.connected).toBe(true);
  });
});

describe('agent link authentication and frames', () => {
  async function tryConnect(
    token: string | undefined,
    claimed?: string,
  ): Promise<{ status: number; reason: string } | { open: WebSocket }> {
    const ws = new WebSocket(`${coordinatorUrl()}${AGENT_LINK_PATH}`, {
      ca: await readFile(tls.caFile),
      headers: {
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
        ...(claimed === undefined ? {} : { [NODE_HEADER]: claimed }),
      },
    });
    ws.on('error', () => undefined);
    return new Promise((resolve) => {
      ws.once('unexpected-response', (_req, res) => {
        resolve({ status: res.statusCode ?? 0, reason: String(res.headers['x-noma-reason']) });
        ws.terminate();
      });
      ws.once('open', () => {
        resolve({ open: ws });
      });
    });
  }

  it('refuses no token, a forged token, another ServiceAccount, another audience, and a token bound to node A claiming node B', async () => {
    const a = await linkedNode('lk-auth-a', { start: false });
    const b = await linkedNode('lk-auth-b', { start: false });
    expect(await tryConnect(undefined)).toMatchObject({ status: 401 });
    const [h, p] = a.token.split('.');
    expect(await tryConnect(`${h ?? ''}.${p ?? ''}.forgedsignature`)).toMatchObject({
      status: 401,
    });
    const other = await nodeBoundToken(kc, ns.name, a.name, {
      serviceAccount: 'someone-else',
      podName: uniqueName('other'),
    });
    expect(await tryConnect(other)).toMatchObject({ status: 403 });
    const apiAudience = await nodeBoundToken(kc, ns.name, a.name, {
      audience: 'https://kubernetes.default.svc',
      podName: uniqueName('aud'),
    });
    expect(await tryConnect(apiAudience)).toMatchObject({ status: 401 });
    // An unbound token of the right account and audience says nothing about a node.
    const unbound = await mintServiceAccountToken(ns.name, AGENT_SA, { audiences: ['noma.dev'] });
    expect(await tryConnect(unbound)).toMatchObject({ status: 403 });
    const wrong = await tryConnect(a.token, b.name);
    expect(wrong).toMatchObject({ status: 403 });
    expect((wrong as { reason: string }).reason).toContain(`bound to node ${a.name}`);
    // Without the header the connection is bound to A; a hello for B is refused and closed.
    const res = await tryConnect(a.token);
    if (!('open' in res)) throw new Error(`refused: ${JSON.stringify(res)}`);
    const errors: string[] = [];
    res.open.on('message', (d: Buffer) => errors.push(d.toString()));
    const closed = new Promise<number>((r) =>
      res.open.on('close', (code) => {
        r(code);
      }),
    );
    res.open.send(
      encode('hello', { node: b.name, bootID: 'x', version: 't', inventory: null, actions: [] }),
    );
    expect(await closed).toBe(4002);
    expect(errors.join()).toContain('forbidden');
    expect(await agentsConnected()).not.toContain(b.name);
    const metrics = await (await fetch(`${coordinator.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/noma_agent_connections_refused_total\{reason="wrong-node"\} [1-9]/);
  });

  it('answers malformed frames with an error and closes on an oversized one; the coordinator stays up', async () => {
    const n = await linkedNode('lk-frames', { start: false });
    const res = await tryConnect(n.token, n.name);
    if (!('open' in res)) throw new Error(`refused: ${JSON.stringify(res)}`);
    const ws = res.open;
    const replies: { type: string; code?: string }[] = [];
    ws.on('message', (d: Buffer) => replies.push(JSON.parse(d.toString()) as { type: string }));
    const closed = new Promise<number>((r) =>
      ws.on('close', (code) => {
        r(code);
      }),
    );
    ws.send('not json');
    ws.send(JSON.stringify({ v: 1, type: 'nonsense' }));
    ws.send(JSON.stringify({ v: 99, type: 'hello' }));
    ws.send(JSON.stringify({ v: 1, type: 'action.start', id: 'x' })); // not the agent's to send
    ws.send(JSON.stringify({ v: 1, type: 'hello', node: n.name })); // missing fields
    await waitFor('five errors', () => Promise.resolve(replies.length >= 5 ? true : undefined));
    expect(replies.map((r) => r.code)).toEqual([
      'bad-frame',
      'invalid',
      'unsupported-version',
      'invalid',
      'invalid',
    ]);
    ws.send('x'.repeat(2 * 1024 * 1024));
    expect(await closed).toBe(1009);
    expect((await fetch(`${coordinator.baseUrl}/healthz`)).status).toBe(200);
    const metrics = await (await fetch(`${coordinator.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/noma_agent_frames_rejected_total\{code="too-large"\} [1-9]/);
    expect(metrics).toMatch(/noma_agent_frames_rejected_total\{code="bad-frame"\} [1-9]/);
  });
});
