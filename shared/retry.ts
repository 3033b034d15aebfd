// The one retry loop: exponential backoff with jitter (backoffMs), stopped by an AbortSignal or
// an attempt limit, retrying only what `retryable` says is worth it (by default what
// kube-errors calls transient).
import { setTimeout as sleep } from 'node:timers/promises';
import { backoffMs } from './duration.js';
import { isTransient } from './kube-errors.js';

export interface RetryOptions {
  /** First delay; doubles per attempt up to maxMs. */
  readonly baseMs: number;
  readonly maxMs: number;
  /** Total attempts, the first included; unlimited when absent. */
  readonly attempts?: number;
  /** Whether an error is worth another attempt; isTransient by default. */
  readonly retryable?: (err: unknown) => boolean;
  /** Called before each wait (log it, count it). */
  readonly onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  /** Ends the waiting: the last error is thrown (or the abort reason, if none yet). */
  readonly signal?: AbortSignal;
}

/**
 * Runs `fn` until it resolves, an error is not retryable, the attempts are used up or the
 * signal aborts; then throws the last error. `fn` gets the 0-based attempt number.
 */
export async function retry<T>(
  fn: (attempt: number) => Promise<T>,
  opts: RetryOptions,
): Promise<T> {
  const retryable = opts.retryable ?? isTransient;
  for (let attempt = 0; ; attempt++) {
    try {
      opts.signal?.throwIfAborted();
      return await fn(attempt);
    } catch (err) {
      const last = opts.attempts !== undefined && attempt + 1 >= opts.attempts;
      if (opts.signal?.aborted || last || !retryable(err)) throw err;
      const delay = backoffMs(attempt, opts);
      opts.onRetry?.(err, attempt, delay);
      try {
        await sleep(delay, undefined, opts.signal === undefined ? {} : { signal: opts.signal });
      } catch {
        throw err; // aborted while waiting: the error that made us wait says more
      }
    }
  }
}
