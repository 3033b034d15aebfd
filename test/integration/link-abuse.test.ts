// The agent link under abuse, against the real API server: the leader's AgentLinkServer and
// LinkDispatcher run in this process (so its heap can be measured after a forced GC), with the
// coordinator's own authentication (authenticateAgent over kubeAuthDeps: a real TokenReview per
// upgrade) and its own pod watch (watchAgentPods). The TokenReview port is wrapped only to count
// from outside how many are in flight. Agents are real agent processes or, for the abuser, a
// WebSocket client holding a real node-bound token.
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect as tlsConnect } from 'node:tls';
import v8 from 'node:v8';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';
import { CoreV1Api } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, inject, it, onTestFailed } from 'vitest';
import WebSocket from 'ws';
import { createLogger } from '../../shared/log.js';
import { AGENT_LINK_PATH, CLOSE_CREDENTIALS, encode } from '../../shared/protocol.js';
import type { NodeActionRequest } from '../../coordinator/actions/dispatcher.js';
import {
  authenticateAgent,
  kubeAuthDeps,
  tokenClaims,
  type AuthDeps,
} from '../../coordinator/link/auth.js';
import { LinkDispatcher } from '../../coordinator/link/dispatcher.js';
import { watchAgentPods } from '../../coordinator/link/pod-watch.js';
import { AgentLinkServer, DEFAULT_MAX_AUTHENTICATING } from '../../coordinator/link/server.js';
import { kubeNodeWatcher } from '../../coordinator/nodes/node-watch.js';
import { daemonSetBoundTokens } from '../support/agent-daemonset.js';
import { startAgent, type AgentProcess } from '../support/agent-process.js';
import { startCoordinator, testCoordinatorArgs } from '../support/coordinator-process.js';
import { installCRD } from '../support/crd.js';
import { mintToken } from '../support/identity.js';
import {
  adminKubeConfig,
  createNamespace,
  createSimNode,
  deleteSimNode,
  uniqueName,
  waitFor,
} from '../support/kube.js';
import {
  AGENT_SA,
  AUDIENCE,
  ensureServiceAccount,
  freePort,
  nodeBoundToken,
  writeLinkTls,
  type LinkTls,
} from '../support/link.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const log = createLogger('link-abuse', 'warn');
let ns: Awaited<ReturnType<typeof createNamespace>>;
let tls: LinkTls;
let ca: Buffer;
let server: AgentLinkServer;
let dispatcher: LinkDispatcher;
let port: number;
const registry = new Registry();
const stop = new AbortController();
const cleanups: (() => Promise<unknown>)[] = [];

/** The server's clock runs this far ahead (the expiry test: a 10-minute token expiring now). */
let skewMs = 0;

/** TokenReviews as seen from outside the server: in flight now, the most at once, in all. */
const reviews = { inFlight: 0, max: 0, total: 0, delayMs: 0, tokens: new Set<string>() };

function countingDeps(base: AuthDeps): AuthDeps {
  return {
    async review(token, audiences) {
      reviews.inFlight++;
      reviews.total++;
      reviews.max = Math.max(reviews.max, reviews.inFlight);
      reviews.tokens.add(token);
      try {
        // A loaded API server, as an input: reviews that take this long (0: as fast as it is).
        if (reviews.delayMs > 0) await sleep(reviews.delayMs);
        return await base.review(token, audiences);
      } finally {
        reviews.inFlight--;
      }
    },
    readPod: (namespace, name) => base.readPod(namespace, name),
  };
}

beforeAll(async () => {
  ns = await createNamespace('link-abuse');
  tls = await writeLinkTls();
  ca = await readFile(tls.caFile);
  await ensureServiceAccount(kc, ns.name);
  const expect_ = { audience: AUDIENCE, serviceAccount: `${ns.name}/${AGENT_SA}` };
  const deps = countingDeps(kubeAuthDeps(kc));
  server = new AgentLinkServer({
    log,
    port: 0,
    tls: { cert: await readFile(tls.certFile), key: await readFile(tls.keyFile) },
    heartbeatMs: 5_000,
    registry,
    authenticate: (token) => authenticateAgent(token, expect_, deps),
    now: () => Date.now() + skewMs,
  });
  dispatcher = new LinkDispatcher({
    log,
    server,
    watchNode: kubeNodeWatcher(kc, log),
  });
  port = await server.listen();
  watchAgentPods(kc, ns.name, server, log, stop.signal);
});

afterAll(async () => {
  stop.abort();
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  await server.close();
  await ns.remove();
});

const url = (): string => `wss://localhost:${port}${AGENT_LINK_PATH}`;

async function metric(name: string, label: string): Promise<number> {
  const values = (await registry.getSingleMetric(name)?.get())?.values ?? [];
  return values
    .filter((v) => Object.values(v.labels).includes(label))
    .reduce((a, v) => a + v.value, 0);
}

async function simNode(prefix: string): Promise<string> {
  const name = uniqueName(prefix);
  await createSimNode(name);
  cleanups.push(() => deleteSimNode(name));
  return name;
}

/** A real agent process for `node`, reading its token from `tokenFile` at each connect. */
async function agentFor(
  node: string,
  token: string,
): Promise<{ agent: AgentProcess; tokenFile: string }> {
  const home = await mkdtemp(join(tmpdir(), `noma-${node}-`));
  const tokenFile = join(home, 'token');
  await writeFile(tokenFile, token);
  await mkdir(join(home, 'work'), { recursive: true });
  const agent = await startAgent({
    nodeName: node,
    kubeconfig: inject('kubeconfig'),
    fixture: 'l4.csv',
    args: [
      ...['--state-dir', join(home, 'state'), '--work-dir', join(home, 'work')],
      ...['--coordinator-url', `wss://localhost:${port}`, '--coordinator-ca', tls.caFile],
      ...['--token-file', tokenFile, '--executor', 'local'],
      ...['--boot-id-file', join(home, 'boot_id'), '--reboot-request-file', join(home, 'reboot')],
    ],
  });
  await writeFile(join(home, 'boot_id'), `${randomUUID()}\n`);
  onTestFailed(() => {
    console.log(`--- agent ${node} ---\n${agent.logs.slice(-40).join('\n')}`);
  });
  cleanups.push(() => agent.stop());
  return { agent, tokenFile };
}

/** A WebSocket client with a real token that said hello: what an agent identity can send. */
async function rawAgent(node: string, token: string) {
  const ws = new WebSocket(url(), { ca, headers: { authorization: `Bearer ${token}` } });
  ws.on('error', () => undefined);
  cleanups.push(() => {
    ws.terminate();
    return Promise.resolve();
  });
  const starts: string[] = [];
  ws.on('message', (d: Buffer) => {
    const m = JSON.parse(d.toString()) as { type: string; id?: string };
    if (m.type === 'action.start' && m.id !== undefined) starts.push(m.id);
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('unexpected-response', (_q, res) => {
      reject(
        new Error(`refused: ${String(res.statusCode)} ${String(res.headers['x-noma-reason'])}`),
      );
    });
  });
  ws.send(encode('hello', { node, bootID: 'b', version: 't', inventory: null, actions: [] }));
  await waitFor('hello taken', () => Promise.resolve(server.isConnected(node)));
  return { ws, starts };
}

/** Sends `frame` and waits until the socket has written it: the sender keeps nothing queued. */
const sendDrained = (ws: WebSocket, frame: string): Promise<void> =>
  new Promise((resolve, reject) => {
    ws.send(frame, (err) => {
      if (err) reject(err);
      else resolve();
    });
  });

function request(node: string, actionId: string, signal: AbortSignal): NodeActionRequest {
  return {
    actionId,
    node,
    index: 0,
    action: { type: 'Script', script: { script: 'true' } },
    signal,
    maintenance: { namespace: ns.name, name: 'm', uid: 'uid' },
    report: () => Promise.resolve(),
    annotations: () => ({}),
    maintenanceChanged: (s) =>
      new Promise((r) => {
        s.addEventListener(
          'abort',
          () => {
            r();
          },
          { once: true },
        );
      }),
  };
}

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
const heapMiB = (): number => {
  gc();
  gc();
  return v8.getHeapStatistics().used_heap_size / 2 ** 20;
};

describe('link abuse', () => {
  it('4,000 action.progress frames with fresh IDs leave the heap bounded; a dispatched action is still followed', async () => {
    const node = await simNode('la-heap');
    const token = await nodeBoundToken(kc, ns.name, node, { podName: uniqueName('la-heap') });
    const abuser = await rawAgent(node, token);
    // The positive control: an action really dispatched to this node is followed.
    const run = dispatcher.run(request(node, 'uid/heap/0/1', new AbortController().signal));
    await waitFor('action.start', () => Promise.resolve(abuser.starts.length === 1));
    await sendDrained(
      abuser.ws,
      encode('action.progress', { id: 'uid/heap/0/1', state: 'running' }),
    );
    await waitFor('progress of the dispatched action kept', () =>
      Promise.resolve(server.agents().find((a) => a.node === node)?.running['uid/heap/0/1']),
    );

    const refusedBefore = await metric('noma_link_frames_refused_total', 'not-dispatched');
    const before = heapMiB();
    const tail = 'x'.repeat(16 * 1024);
    for (let i = 0; i < 4_000; i++) {
      const id = `fresh-${String(i)}-${randomBytes(8).toString('hex')}`;
      await sendDrained(
        abuser.ws,
        encode('action.progress', { id, state: 'running', outputTail: tail }),
      );
    }
    // Processed: refused, or (were the refusal missing) stored with the agent's running actions.
    const stored = () => Object.keys(server.agents().find((a) => a.node === node)?.running ?? {});
    const refusedNow = async () =>
      (await metric('noma_link_frames_refused_total', 'not-dispatched')) - refusedBefore;
    await waitFor(
      '4000 frames processed',
      async () => (await refusedNow()) + stored().length - 1 === 4_000,
      60_000,
    );
    const after = heapMiB();
    const refused = await refusedNow();
    console.log(
      `LINK_ABUSE heap_before_mib=${before.toFixed(1)} heap_after_mib=${after.toFixed(1)} refused=${String(refused)}`,
    );
    expect(refused).toBe(4_000);
    expect(after - before).toBeLessThan(8);
    expect(stored()).toEqual(['uid/heap/0/1']);
    await sendDrained(
      abuser.ws,
      encode('action.result', { id: 'uid/heap/0/1', outcome: 'succeeded', message: '' }),
    );
    expect(await run).toMatchObject({ kind: 'succeeded' });
  }, 120_000);

  it('500 junk upgrades in parallel: TokenReviews in flight never above the limit, 503s counted; a connected agent stays, a new one connects during them', async () => {
    const [steady, late] = await Promise.all([simNode('la-steady'), simNode('la-late')]);
    const tokens = await Promise.all(
      [steady, late].map((n) =>
        nodeBoundToken(kc, ns.name, n, { podName: uniqueName('la-flood') }),
      ),
    );
    const first = await agentFor(steady, tokens[0] ?? '');
    await waitFor('steady agent connected', () => Promise.resolve(server.isConnected(steady)));
    const steadySince = server.agents().find((a) => a.node === steady)?.connectedAt;
    const refused503 = async () =>
      (await metric('noma_link_upgrades_refused_total', 'busy')) +
      (await metric('noma_link_upgrades_refused_total', 'rate'));
    const before503 = await refused503();
    reviews.max = 0;
    // Each review held 200 ms (an API server under load): without a limit, all would pile on it.
    reviews.delayMs = 200;
    // 500 clients from 10 addresses, in a process of their own, until the flood is stopped.
    const flood = startFlood(500, 10);
    await waitFor(
      'the flood under way',
      () => Promise.resolve(total(flood.answers) >= 100),
      60_000,
    );
    const floodAtStart = total(flood.answers);
    const second = await agentFor(late, tokens[1] ?? '');
    await waitFor('new agent connected', () => Promise.resolve(server.isConnected(late)), 90_000);
    const floodAtConnect = total(flood.answers);
    await waitFor(
      '500 junk upgrades answered',
      () => Promise.resolve(total(flood.answers) >= 500),
      90_000,
    );
    const answers = await flood.stop();
    reviews.delayMs = 0;
    const upgrades503 = (await refused503()) - before503;
    console.log(
      `LINK_ABUSE max_reviews_in_flight=${String(reviews.max)} limit=${String(DEFAULT_MAX_AUTHENTICATING)} upgrades_503=${String(upgrades503)} junk_upgrades=${String(total(answers))} answers=${JSON.stringify(Object.fromEntries(answers))} junk_answered_when_new_agent_started=${String(floodAtStart)} when_it_connected=${String(floodAtConnect)}`,
    );
    expect(reviews.max).toBeLessThanOrEqual(DEFAULT_MAX_AUTHENTICATING);
    // The flood did fill the slots: the limit is what held it.
    expect(reviews.max).toBe(DEFAULT_MAX_AUTHENTICATING);
    expect(answers.get(503) ?? 0).toBeGreaterThan(0);
    expect(answers.get(503)).toBeLessThanOrEqual(upgrades503);
    // Reviewed and refused (401), or over a limit (503): no junk upgrade got in.
    expect(answers.get(401) ?? 0).toBeGreaterThan(0);
    expect(answers.has(101)).toBe(false);
    // The new agent connected while the junk kept coming.
    expect(total(answers)).toBeGreaterThan(floodAtConnect);
    // The agent connected before the flood kept its connection all along.
    expect(server.agents().find((a) => a.node === steady)?.connectedAt).toBe(steadySince);
    for (const a of [first.agent, second.agent]) {
      const status = (await a.get('/status')).body as { link: { connected: boolean } };
      expect(status.link.connected).toBe(true);
    }
  }, 240_000);

  it('drops a slow handshake: TCP without TLS, and upgrade headers sent slowly', async () => {
    const before = await metric('noma_link_upgrades_refused_total', 'handshake-timeout');
    const closedAfter = (s: { once(e: 'close', f: () => void): unknown }, t0: number) =>
      new Promise<number>((r) =>
        s.once('close', () => {
          r(Date.now() - t0);
        }),
      );
    const tcp = tcpConnect(port, '127.0.0.1');
    tcp.on('error', () => undefined);
    const tcpClosed = closedAfter(tcp, Date.now());
    const slow = tlsConnect({ port, host: '127.0.0.1', servername: 'localhost', ca });
    slow.on('error', () => undefined);
    await new Promise((r) => slow.once('secureConnect', r));
    const slowClosed = closedAfter(slow, Date.now());
    const lines = [
      `GET ${AGENT_LINK_PATH} HTTP/1.1`,
      'Host: localhost',
      'Upgrade: websocket',
      'Connection: Upgrade',
      'Sec-WebSocket-Version: 13',
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
      'Authorization: Bearer junk',
    ];
    // One header a second: the 5 s deadline passes before the request is complete.
    void (async () => {
      for (const line of lines) {
        if (slow.destroyed) return;
        slow.write(`${line}\r\n`);
        await sleep(1_000);
      }
      if (!slow.destroyed) slow.write('\r\n');
    })();
    const [tcpMs, slowMs] = await Promise.all([tcpClosed, slowClosed]);
    console.log(
      `LINK_ABUSE slow_tcp_dropped_ms=${String(tcpMs)} slow_upgrade_dropped_ms=${String(slowMs)}`,
    );
    expect(tcpMs).toBeGreaterThanOrEqual(4_500);
    expect(tcpMs).toBeLessThan(8_000);
    expect(slowMs).toBeGreaterThanOrEqual(4_500);
    expect(slowMs).toBeLessThan(7_000);
    expect(await metric('noma_link_upgrades_refused_total', 'handshake-timeout')).toBe(before + 2);
  }, 30_000);

  it('closes a connection when its token expires; the agent reconnects with the rotated token', async () => {
    const node = await simNode('la-exp');
    const pod = uniqueName('la-exp');
    // TokenRequest grants no expiry under 10 minutes: the server's clock is set ahead so that
    // this token (an hour) expires 6 s from now. The token, its review, the close and the
    // reconnect are real; only the wait is cut short.
    const first = await nodeBoundToken(kc, ns.name, node, { podName: pod });
    const exp = tokenClaims(first)?.exp ?? 0;
    skewMs = exp * 1000 - Date.now() - 6_000;
    try {
      const { agent, tokenFile } = await agentFor(node, first);
      await waitFor('agent connected', () => Promise.resolve(server.isConnected(node)));
      const connectedAt = server.agents().find((a) => a.node === node)?.connectedAt;
      // The kubelet rotates the projected token well before it expires; so does the test.
      const podUid =
        (await core.readNamespacedPod({ namespace: ns.name, name: pod })).metadata?.uid ?? '';
      // Longer-lived, so that on the skewed clock it is still good for a while.
      const rotated = await mintToken(kc, ns.name, AGENT_SA, {
        audiences: [AUDIENCE],
        boundPod: { name: pod, uid: podUid },
        expirationSeconds: 7_200,
      });
      await writeFile(tokenFile, rotated);
      const revokedBefore = await metric('noma_link_connections_revoked_total', 'token-expired');
      await waitFor(
        'connection closed at expiry',
        async () =>
          (await metric('noma_link_connections_revoked_total', 'token-expired')) > revokedBefore,
        15_000,
      );
      await waitFor(
        'agent reconnected',
        () =>
          Promise.resolve(
            server.isConnected(node) &&
              server.agents().find((a) => a.node === node)?.connectedAt !== connectedAt,
          ),
        15_000,
      );
      expect(reviews.tokens.has(rotated)).toBe(true);
      expect(agent.logs.join('\n')).toContain(`closed (${String(CLOSE_CREDENTIALS)}`);
    } finally {
      skewMs = 0;
    }
  }, 60_000);

  it('closes the connection of an agent whose pod is deleted', async () => {
    const node = await simNode('la-pod');
    const ds = uniqueName('la-ds');
    const tokens = await daemonSetBoundTokens(kc, ns.name, ds, { 'kubernetes.io/hostname': node }, [
      node,
    ]);
    const { agent } = await agentFor(node, tokens.get(node) ?? '');
    await waitFor('agent connected', () => Promise.resolve(server.isConnected(node)));
    const pods = await core.listNamespacedPod({
      namespace: ns.name,
      labelSelector: `noma.dev/test-agent-ds=${ds}`,
    });
    const pod = pods.items.find((p) => p.spec?.nodeName === node)?.metadata?.name ?? '';
    const before = await metric('noma_link_connections_revoked_total', 'pod-deleted');
    const t0 = Date.now();
    await core.deleteNamespacedPod({ namespace: ns.name, name: pod, gracePeriodSeconds: 0 });
    await waitFor('connection closed', () => Promise.resolve(!server.isConnected(node)), 10_000);
    const closedMs = Date.now() - t0;
    console.log(`LINK_ABUSE pod_deleted_closed_ms=${String(closedMs)}`);
    expect(await metric('noma_link_connections_revoked_total', 'pod-deleted')).toBe(before + 1);
    await waitFor('the agent saw the close', () =>
      Promise.resolve(agent.logs.join('\n').includes(`closed (${String(CLOSE_CREDENTIALS)}`)),
    );
    // Its token died with the pod: the agent's reconnects are refused.
    await sleep(2_000);
    expect(server.isConnected(node)).toBe(false);
  }, 90_000);
});

describe('the coordinator process', () => {
  it('serves the link with these limits: the connection of a deleted pod is closed, a flood past --agent-max-authenticating is answered 503', async () => {
    await installCRD(kc);
    const agentPort = await freePort();
    const coordinator = await startCoordinator(inject('kubeconfig'), [
      ...testCoordinatorArgs(ns.name, uniqueName('lease-la'), 'la-coordinator'),
      ...['--agent-port', String(agentPort), '--agent-service-account', `${ns.name}/${AGENT_SA}`],
      ...['--agent-tls-cert', tls.certFile, '--agent-tls-key', tls.keyFile],
      ...['--agent-max-authenticating', '1', '--agent-handshake-timeout', '3s'],
    ]);
    cleanups.push(() => coordinator.kill('SIGTERM'));
    onTestFailed(() => {
      console.log(`--- coordinator ---\n${coordinator.logs.slice(-60).join('\n')}`);
    });
    const node = await simNode('la-proc');
    const pod = uniqueName('la-proc');
    const token = await nodeBoundToken(kc, ns.name, node, { podName: pod });
    const url = `wss://localhost:${String(agentPort)}${AGENT_LINK_PATH}`;
    const ws = new WebSocket(url, { ca, headers: { authorization: `Bearer ${token}` } });
    ws.on('error', () => undefined);
    cleanups.push(() => {
      ws.terminate();
      return Promise.resolve();
    });
    const welcomed = new Promise((r) => ws.once('message', r));
    const closed = new Promise<number>((r) =>
      ws.once('close', (code) => {
        r(code);
      }),
    );
    await new Promise((r) => ws.once('open', r));
    ws.send(encode('hello', { node, bootID: 'b', version: 't', inventory: null, actions: [] }));
    await welcomed;
    // Thirty upgrades at once with one TokenReview allowed at a time: some are answered 503.
    const statuses = await Promise.all(
      Array.from({ length: 30 }, () => statusOf(url, `${token.slice(0, -4)}junk`)),
    );
    const n = (status: number) => statuses.filter((s) => s === status).length;
    console.log(
      `LINK_ABUSE coordinator_process upgrades_503=${String(n(503))} upgrades_401=${String(n(401))}`,
    );
    expect(statuses).toContain(503);
    expect(statuses.every((s) => s === 503 || s === 401)).toBe(true);
    await core.deleteNamespacedPod({ namespace: ns.name, name: pod, gracePeriodSeconds: 0 });
    expect(await closed).toBe(CLOSE_CREDENTIALS);
    // Its log line may trail the close on the pipe.
    await waitFor('the coordinator logged why', () =>
      Promise.resolve(coordinator.logs.some((l) => l.includes('agent credential ended'))),
    );
  }, 90_000);
});

/** The HTTP status an upgrade with `token` gets (101: it got in). */
function statusOf(url: string, token: string): Promise<number> {
  const ws = new WebSocket(url, { ca, headers: { authorization: `Bearer ${token}` } });
  ws.on('error', () => undefined);
  return new Promise((resolve) => {
    ws.once('unexpected-response', (_q, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once('open', () => {
      resolve(101);
      ws.terminate();
    });
    ws.once('close', () => {
      resolve(0);
    });
  });
}

const total = (answers: ReadonlyMap<number, number>): number =>
  [...answers.values()].reduce((a, n) => a + n, 0);

/**
 * bench/link-flood.ts in a process of its own (its TLS work is not the server's): junk
 * upgrades with tokens shaped like the agents', until stop(), which resolves with the totals.
 */
function startFlood(clients: number, sources: number) {
  const answers = new Map<number, number>();
  const proc = spawn(
    process.execPath,
    [
      ...['--import', 'tsx', 'bench/run.ts', 'link-flood'],
      ...['--url', `wss://localhost:${String(port)}`, '--ca', tls.caFile],
      ...['--service-account', `${ns.name}/${AGENT_SA}`, '--audience', AUDIENCE],
      ...['--clients', String(clients), '--sources', String(sources), '--duration', '170s'],
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  cleanups.push(() => Promise.resolve(proc.kill('SIGKILL')));
  let buffer = '';
  proc.stdout.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    const lines = buffer.split('\n');
    buffer = lines.pop() ?? '';
    for (const line of lines) {
      const report = JSON.parse(line) as { answers: Record<string, number> };
      answers.clear();
      for (const [k, v] of Object.entries(report.answers)) answers.set(Number(k), v);
    }
  });
  const exited = new Promise<void>((r) =>
    proc.once('exit', () => {
      r();
    }),
  );
  return {
    answers,
    async stop(): Promise<Map<number, number>> {
      proc.kill('SIGTERM');
      await exited;
      return answers;
    },
  };
}
