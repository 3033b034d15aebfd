// AgentLinkServer over real TLS sockets on localhost, with authentication as an input (what a
// TokenReview would have said): the credential's end (expiry on the server's clock, the bound
// pod deleted or missing from a list), frames about actions never dispatched, the upgrade
// limits and the handshake deadline. test/integration/link-abuse.test.ts does the same against
// the real API server and a real agent.
import { connect as tcpConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { Registry } from 'prom-client';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { generateDevCerts, type DevCerts } from '../../shared/dev-certs.js';
import { createLogger } from '../../shared/log.js';
import { AGENT_LINK_PATH, CLOSE_CREDENTIALS, encode } from '../../shared/protocol.js';
import type { AgentIdentity, AuthResult } from './auth.js';
import { AgentLinkServer, type LinkServerOptions } from './server.js';

let certs: DevCerts;
const servers: AgentLinkServer[] = [];
const sockets: WebSocket[] = [];

beforeAll(async () => {
  certs = await generateDevCerts();
});

afterEach(async () => {
  for (const ws of sockets.splice(0)) ws.terminate();
  for (const s of servers.splice(0)) await s.close();
});

interface Started {
  server: AgentLinkServer;
  port: number;
  registry: Registry;
  expected: Set<string>;
}

async function start(
  authenticate: (token: string) => Promise<AuthResult>,
  opts: Partial<LinkServerOptions> = {},
): Promise<Started> {
  const registry = new Registry();
  const server = new AgentLinkServer({
    log: createLogger('test', 'silent'),
    port: 0,
    host: '127.0.0.1',
    tls: { cert: certs.cert, key: certs.key },
    heartbeatMs: 60_000,
    registry,
    authenticate,
    ...opts,
  });
  servers.push(server);
  const expected = new Set<string>();
  server.setHandlers({
    onHello: () => undefined,
    onResult: () => undefined,
    expects: (node, id) => expected.has(`${node}/${id}`),
  });
  return { server, port: await server.listen(), registry, expected };
}

const ok =
  (identity: Partial<AgentIdentity> = {}) =>
  () =>
    Promise.resolve<AuthResult>({ ok: true, identity: { node: 'n1', username: 'u', ...identity } });

/** Connects and says hello; resolves with the socket and what it received. */
async function agent(
  port: number,
  node = 'n1',
): Promise<{
  ws: WebSocket;
  frames: { type: string; code?: string; ref?: string }[];
  closed: Promise<number>;
}> {
  const ws = new WebSocket(`wss://127.0.0.1:${port}${AGENT_LINK_PATH}`, {
    ca: certs.caCert,
    headers: { authorization: 'Bearer t' },
  });
  sockets.push(ws);
  ws.on('error', () => undefined);
  const frames: { type: string }[] = [];
  ws.on('message', (d: Buffer) => frames.push(JSON.parse(d.toString()) as { type: string }));
  const closed = new Promise<number>((r) =>
    ws.on('close', (code) => {
      r(code);
    }),
  );
  await new Promise((r, j) => {
    ws.once('open', r);
    ws.once('unexpected-response', (_q, res) => {
      j(new Error(`HTTP ${String(res.statusCode)}`));
    });
  });
  ws.send(encode('hello', { node, bootID: 'b', version: 't', inventory: null, actions: [] }));
  await until(() => frames.some((f) => f.type === 'welcome'));
  return { ws, frames, closed };
}

/** The HTTP status of an upgrade (101 when it went through), and its Retry-After. */
function upgradeStatus(port: number): Promise<{ status: number; retryAfter?: string }> {
  const ws = new WebSocket(`wss://127.0.0.1:${port}${AGENT_LINK_PATH}`, {
    ca: certs.caCert,
    headers: { authorization: 'Bearer t' },
  });
  sockets.push(ws);
  ws.on('error', () => undefined);
  return new Promise((resolve) => {
    ws.once('open', () => {
      resolve({ status: 101 });
    });
    ws.once('unexpected-response', (_q, res) => {
      const retryAfter = res.headers['retry-after'];
      resolve({ status: res.statusCode ?? 0, ...(retryAfter === undefined ? {} : { retryAfter }) });
    });
  });
}

async function until(cond: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function count(registry: Registry, name: string, label: string): Promise<number> {
  const m = (await registry.getSingleMetric(name)?.get())?.values ?? [];
  return m.filter((v) => Object.values(v.labels).includes(label)).reduce((a, v) => a + v.value, 0);
}

describe('the credential ends the connection', () => {
  it('closes at the token’s expiry on the server’s clock, with the credentials close code', async () => {
    // The server's clock runs 10 min ahead: a token that expires in 10 min 300 ms has 300 ms.
    const skew = 600_000;
    const expiresAt = Date.now() + skew + 300;
    const s = await start(ok({ expiresAt }), { now: () => Date.now() + skew });
    const a = await agent(s.port);
    expect(s.server.isConnected('n1')).toBe(true);
    const t0 = Date.now();
    expect(await a.closed).toBe(CLOSE_CREDENTIALS);
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(s.server.isConnected('n1')).toBe(false);
    expect(await count(s.registry, 'noma_link_connections_revoked_total', 'token-expired')).toBe(1);
  });

  it('refuses a token already expired on its clock', async () => {
    const s = await start(ok({ expiresAt: Date.now() - 1 }));
    expect(await upgradeStatus(s.port)).toEqual({ status: 401 });
  });

  it('closes the connection of a deleted pod, not of a newer pod of that name', async () => {
    const pod = { namespace: 'noma-system', name: 'agent-x', uid: 'u1' };
    const s = await start(ok({ pod }));
    const a = await agent(s.port);
    s.server.podGone('noma-system', 'agent-x', 'u0');
    s.server.podGone('other', 'agent-x', 'u1');
    await new Promise((r) => setTimeout(r, 100));
    expect(s.server.isConnected('n1')).toBe(true);
    s.server.podGone('noma-system', 'agent-x', 'u1');
    expect(await a.closed).toBe(CLOSE_CREDENTIALS);
    expect(await count(s.registry, 'noma_link_connections_revoked_total', 'pod-deleted')).toBe(1);
    // A review that raced the deletion: the token of the deleted pod is refused all the same.
    expect(await upgradeStatus(s.port)).toEqual({ status: 403 });
  });

  it('closes connections whose pod a list does not show, judging only those authenticated before it', async () => {
    const pod = { namespace: 'noma-system', name: 'agent-x', uid: 'u1' };
    const s = await start(ok({ pod }));
    const listedBefore = Date.now() - 1_000;
    const a = await agent(s.port);
    s.server.podsListed('noma-system', new Map(), listedBefore);
    s.server.podsListed('noma-system', new Map([['agent-x', 'u1']]), Date.now());
    await new Promise((r) => setTimeout(r, 100));
    expect(s.server.isConnected('n1')).toBe(true);
    s.server.podsListed('noma-system', new Map([['agent-x', 'u2']]), Date.now());
    expect(await a.closed).toBe(CLOSE_CREDENTIALS);
  });
});

describe('frames about actions never dispatched', () => {
  it('are refused with an error and counted, never stored or forwarded', async () => {
    const results: string[] = [];
    const s = await start(ok());
    s.server.setHandlers({
      onHello: () => undefined,
      onResult: (_n, r) => results.push(r.id),
      expects: (node, id) => s.expected.has(`${node}/${id}`),
    });
    s.expected.add('n1/mine');
    const a = await agent(s.port);
    const progress = (id: string) =>
      encode('action.progress', { id, state: 'running', outputTail: 'x'.repeat(1000) });
    for (let i = 0; i < 100; i++) a.ws.send(progress(`fresh-${i}`));
    a.ws.send(progress('mine'));
    a.ws.send(encode('action.result', { id: 'other', outcome: 'succeeded', message: '' }));
    await until(() => a.frames.filter((f) => f.type === 'error').length === 101);
    expect(a.frames.find((f) => f.type === 'error')).toMatchObject({
      code: 'forbidden',
      ref: 'fresh-0',
    });
    expect(Object.keys(s.server.agents()[0]?.running ?? {})).toEqual(['mine']);
    expect(results).toEqual([]);
    expect(await count(s.registry, 'noma_link_frames_refused_total', 'not-dispatched')).toBe(101);
    a.ws.send(encode('action.result', { id: 'mine', outcome: 'succeeded', message: '' }));
    await until(() => results.length === 1);
    expect(results).toEqual(['mine']);
  });
});

describe('upgrade limits', () => {
  it('answers 503 with Retry-After past the authentications in flight; connected agents stay', async () => {
    let release: () => void = () => undefined;
    const held = new Promise<void>((r) => (release = r));
    let calls = 0;
    const s = await start(
      async () => {
        if (calls++ === 1) await held;
        return { ok: true, identity: { node: `n${calls}`, username: 'u' } };
      },
      { maxAuthenticating: 1 },
    );
    const first = await agent(s.port, 'n1');
    const pending = upgradeStatus(s.port);
    await until(() => calls === 2);
    expect(await upgradeStatus(s.port)).toEqual({ status: 503, retryAfter: '1' });
    release();
    expect(await pending).toEqual({ status: 101 });
    expect(first.ws.readyState).toBe(WebSocket.OPEN);
    expect(await count(s.registry, 'noma_link_upgrades_refused_total', 'busy')).toBe(1);
  });

  it('answers 503 past the rate of one source address', async () => {
    const s = await start(ok(), { upgradeRate: { perSecond: 0.5, burst: 2 } });
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push(await upgradeStatus(s.port));
    expect(statuses).toEqual([{ status: 101 }, { status: 101 }, { status: 503, retryAfter: '2' }]);
    expect(await count(s.registry, 'noma_link_upgrades_refused_total', 'rate')).toBe(1);
  });
});

describe('handshake deadline', () => {
  const closedWithin = (socket: { once(e: 'close', f: () => void): unknown }) =>
    new Promise<number>((r) => {
      const t0 = Date.now();
      socket.once('close', () => {
        r(Date.now() - t0);
      });
    });

  it('drops a TCP connection that never starts TLS', async () => {
    const s = await start(ok(), { handshakeTimeoutMs: 300 });
    const sock = tcpConnect(s.port, '127.0.0.1');
    sock.on('error', () => undefined);
    expect(await closedWithin(sock)).toBeLessThan(2_000);
    expect(await count(s.registry, 'noma_link_upgrades_refused_total', 'handshake-timeout')).toBe(
      1,
    );
  });

  it('drops a TLS connection that sends its upgrade too slowly, and one that never says hello', async () => {
    const s = await start(ok(), { handshakeTimeoutMs: 300 });
    const sock = tlsConnect({ port: s.port, host: '127.0.0.1', ca: certs.caCert });
    sock.on('error', () => undefined);
    sock.once('secureConnect', () => sock.write(`GET ${AGENT_LINK_PATH} HTTP/1.1\r\n`));
    expect(await closedWithin(sock)).toBeLessThan(2_000);
    const ws = new WebSocket(`wss://127.0.0.1:${s.port}${AGENT_LINK_PATH}`, {
      ca: certs.caCert,
      headers: { authorization: 'Bearer t' },
    });
    sockets.push(ws);
    ws.on('error', () => undefined);
    const closed = new Promise<number>((r) =>
      ws.on('close', (code) => {
        r(code);
      }),
    );
    await new Promise((r) => ws.once('open', r));
    expect(await closed).toBe(1006);
    expect(s.server.isConnected('n1')).toBe(false);
    // One that said hello in time stays past the deadline.
    const a = await agent(s.port);
    await new Promise((r) => setTimeout(r, 600));
    expect(a.ws.readyState).toBe(WebSocket.OPEN);
    expect(await count(s.registry, 'noma_link_upgrades_refused_total', 'handshake-timeout')).toBe(
      2,
    );
  });
});
