// A Slack-compatible webhook for tests: records every POST ({channel, text}) it receives, so a
// test counts notifications from the outside. Imports nothing from vitest.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface WebhookPost {
  readonly channel: string;
  readonly text: string;
}

export interface WebhookRecorder {
  /** The URL to give the coordinator (--notify-webhook-url). */
  readonly url: string;
  readonly posts: WebhookPost[];
  close(): Promise<void>;
}

export async function startWebhookRecorder(): Promise<WebhookRecorder> {
  const posts: WebhookPost[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      posts.push(JSON.parse(body) as WebhookPost);
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    posts,
    close: () =>
      new Promise((r) => {
        server.close(() => {
          r();
        });
      }),
  };
}
