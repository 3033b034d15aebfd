import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { webhookNotifier } from './notify.js';

let server: Server | undefined;

/** A webhook that answers each POST with the next status of `statuses` (the last one after). */
async function webhook(
  statuses: number[],
  onPost: () => void = () => undefined,
): Promise<{ url: string; bodies: unknown[] }> {
  const bodies: unknown[] = [];
  server = createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      bodies.push(JSON.parse(text));
      onPost();
      res.statusCode = statuses[Math.min(bodies.length, statuses.length) - 1] ?? 200;
      res.end();
    });
  });
  await new Promise<void>((r) => server?.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${String((server.address() as AddressInfo).port)}`, bodies };
}

const closed = (s: Server | undefined): Promise<void> =>
  new Promise((resolve) => {
    if (s === undefined) resolve();
    else
      s.close(() => {
        resolve();
      });
  });

afterEach(async () => {
  await closed(server);
  server = undefined;
});

const msg = { channel: '#ops', text: 'node n1 rebooted' };

describe('webhookNotifier', () => {
  it('posts the message again after failures until one is taken', async () => {
    const hook = await webhook([500, 503, 200]);
    const out = await webhookNotifier({ url: hook.url, backoffMs: 1 }).send(
      msg,
      new AbortController().signal,
    );
    expect(out).toEqual({ delivered: true });
    expect(hook.bodies).toEqual([msg, msg, msg]);
  });

  it('gives up after its attempts and says what the last one got', async () => {
    const hook = await webhook([404]);
    const out = await webhookNotifier({ url: hook.url, backoffMs: 1, attempts: 2 }).send(
      msg,
      new AbortController().signal,
    );
    expect(out).toEqual({
      delivered: false,
      error: 'webhook answered HTTP 404 (after 2 attempts)',
    });
    expect(hook.bodies).toHaveLength(2);
  });

  it('reports a webhook it cannot reach', async () => {
    const hook = await webhook([200]);
    await closed(server);
    server = undefined;
    const out = await webhookNotifier({ url: hook.url, backoffMs: 1, attempts: 2 }).send(
      msg,
      new AbortController().signal,
    );
    expect(out.delivered ? '' : out.error).toMatch(/^webhook unreachable: .*\(after 2 attempts\)$/);
  });

  it('stops when its signal aborts, without waiting out the backoff', async () => {
    const ac = new AbortController();
    // Once the first POST is answered: the notifier is then (most likely) waiting to post again.
    const hook = await webhook([500], () => {
      setTimeout(() => {
        ac.abort();
      }, 200);
    });
    const started = Date.now();
    await expect(
      webhookNotifier({ url: hook.url, backoffMs: 10_000 }).send(msg, ac.signal),
    ).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(hook.bodies).toHaveLength(1);
  });

  it('says so when no webhook is configured', async () => {
    const out = await webhookNotifier({ url: undefined }).send(msg, new AbortController().signal);
    expect(out).toEqual({ delivered: false, error: 'no webhook configured' });
  });
});
