// Notify: a Slack-compatible webhook POST ({channel, text}). Retried; the caller records the
// outcome (Event, condition) and moves on either way: a chat outage must not strand nodes.
import { setTimeout as sleep } from 'node:timers/promises';

export interface NotifyMessage {
  readonly channel: string;
  readonly text: string;
}

export type NotifyOutcome = { delivered: true } | { delivered: false; error: string };

export interface Notifier {
  send(msg: NotifyMessage, signal: AbortSignal): Promise<NotifyOutcome>;
}

export interface WebhookOptions {
  readonly url: string | undefined;
  readonly attempts?: number;
  readonly timeoutMs?: number;
  readonly backoffMs?: number;
}

export function webhookNotifier(opts: WebhookOptions): Notifier {
  const attempts = opts.attempts ?? 3;
  const timeoutMs = opts.timeoutMs ?? 5_000;
  const backoffMs = opts.backoffMs ?? 500;
  return {
    async send(msg, signal) {
      if (opts.url === undefined) return { delivered: false, error: 'no webhook configured' };
      let error = '';
      for (let i = 0; i < attempts; i++) {
        if (i > 0) await sleep(backoffMs * 2 ** (i - 1), undefined, { signal });
        try {
          const res = await fetch(opts.url, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ channel: msg.channel, text: msg.text }),
            signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]),
          });
          if (res.ok) return { delivered: true };
          error = `webhook answered HTTP ${res.status}`;
        } catch (err) {
          if (signal.aborted) throw err;
          error = `webhook unreachable: ${err instanceof Error ? err.message : String(err)}`;
        }
      }
      return { delivered: false, error: `${error} (after ${attempts} attempts)` };
    },
  };
}
