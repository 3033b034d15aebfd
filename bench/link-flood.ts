// npm run bench -- link-flood --url wss://localhost:8443 --ca ca.crt --service-account ns/name
//   [--audience noma.dev] [--clients 500] [--sources 10] [--duration 30s]
// Junk upgrades against an agent link, from its own process (the attacker's CPU is not the
// coordinator's): --clients clients spread over --sources loopback addresses (127.0.1.1…),
// each sending upgrades one after the other with a fresh token shaped like the agents'
// (audience, subject), so that only a TokenReview can refuse it; after a 503 a client waits
// as Retry-After says. Prints a JSON line of the answers so far (HTTP status → count) twice a
// second, and the totals with `done: true` at the end: SIGTERM, SIGINT or --duration.
import { randomBytes, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { parseDuration } from '../shared/duration.js';
import { AGENT_LINK_PATH } from '../shared/protocol.js';

interface Flood {
  running: boolean;
  readonly answers: Map<number, number>;
}

/** A JWT with the agents' audience and subject and a signature of nobody. */
function junkToken(audience: string, subject: string): string {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const claims = {
    aud: [audience],
    sub: subject,
    exp: Math.floor(Date.now() / 1000) + 600,
    jti: randomUUID(),
  };
  return `${b64({ alg: 'RS256' })}.${b64(claims)}.${randomBytes(64).toString('base64url')}`;
}

/** One upgrade: its HTTP status (101: it got in; 0: no answer) and Retry-After. */
function upgradeOnce(
  url: string,
  ca: Buffer,
  token: string,
  source: string | undefined,
): Promise<{ status: number; retryAfterS: number }> {
  const ws = new WebSocket(url, {
    ca,
    ...(source === undefined ? {} : { localAddress: source }),
    headers: { authorization: `Bearer ${token}` },
    handshakeTimeout: 30_000,
  });
  ws.on('error', () => undefined);
  return new Promise((resolve) => {
    ws.once('unexpected-response', (_q, res) => {
      const retryAfterS = Number(res.headers['retry-after'] ?? 1);
      resolve({ status: res.statusCode ?? 0, retryAfterS });
      ws.terminate();
    });
    ws.once('open', () => {
      resolve({ status: 101, retryAfterS: 0 });
      ws.terminate();
    });
    ws.once('close', () => {
      resolve({ status: 0, retryAfterS: 1 });
    });
  });
}

async function client(
  flood: Flood,
  send: () => Promise<{ status: number; retryAfterS: number }>,
): Promise<void> {
  while (flood.running) {
    const { status, retryAfterS } = await send();
    flood.answers.set(status, (flood.answers.get(status) ?? 0) + 1);
    await sleep(status === 503 ? retryAfterS * 1000 + Math.random() * 500 : Math.random() * 200);
  }
}

export default async function linkFlood(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      url: { type: 'string' },
      ca: { type: 'string' },
      audience: { type: 'string', default: 'noma.dev' },
      'service-account': { type: 'string' },
      clients: { type: 'string', default: '500' },
      sources: { type: 'string', default: '10' },
      duration: { type: 'string' },
    },
  });
  const [ns, sa] = (values['service-account'] ?? '').split('/');
  if (values.url === undefined || values.ca === undefined || ns === undefined || sa === undefined) {
    throw new Error('--url, --ca and --service-account ns/name are required');
  }
  const url = new URL(AGENT_LINK_PATH, values.url).href;
  const ca = await readFile(values.ca);
  const subject = `system:serviceaccount:${ns}:${sa}`;
  const sources = Number(values.sources);
  const flood: Flood = { running: true, answers: new Map() };
  const started = Date.now();
  const report = (done: boolean): void => {
    const answers = Object.fromEntries(flood.answers);
    console.log(JSON.stringify({ answers, elapsedMs: Date.now() - started, done }));
  };
  const stop = (): void => {
    flood.running = false;
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  const ms = values.duration === undefined ? undefined : parseDuration(values.duration);
  if (ms !== undefined) setTimeout(stop, ms).unref();
  const ticker = setInterval(() => {
    report(false);
  }, 500);
  const clients = Array.from({ length: Number(values.clients) }, (_, i) => {
    const source = sources > 0 ? `127.0.1.${String(1 + (i % sources))}` : undefined;
    return client(flood, () => upgradeOnce(url, ca, junkToken(values.audience, subject), source));
  });
  await Promise.all(clients);
  clearInterval(ticker);
  report(true);
}
