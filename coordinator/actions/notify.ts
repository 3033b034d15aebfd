// Notify: a Slack-compatible webhook POST ({channel, text}). Retried; the caller records the
// outcome (Event, condition) and moves on either way: a chat outage must not strand nodes.
import { retry } from '../../shared/retry.js';

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
  const baseMs = opts.backoffMs ?? 500;
  return {
    async send(msg, signal) {
      const url = opts.url;
      if (url === undefined) return { delivered: false, error: 'no webhook configured' };
      try {
        // Any failure is worth another try (a chat outage passes); only our own stop is not.
        await retry(
          () => post(url, msg, AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)])),
          {
            baseMs,
            maxMs: 30_000,
            attempts,
            retryable: () => !signal.aborted,
            signal,
          },
        );
        return { delivered: true };
      } catch (err) {
        if (signal.aborted) throw err;
        return {
          delivered: false,
          error: `${(err as Error).message} (after ${attempts} attempts)`,
        };
      }
    },
  };
}

/** One POST; throws what went wrong, in words for the Event. */
async function post(url: string, msg: NotifyMessage, signal: AbortSignal): Promise<void> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ channel: msg.channel, text: msg.text }),
      signal,
    });
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(`webhook unreachable: ${why}`, { cause: err });
  }
  if (!res.ok) throw new Error(`webhook answered HTTP ${res.status}`);
}
