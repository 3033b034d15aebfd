// The one retry loop: exponential backoff with jitter (backoffMs), stopped by an AbortSignal or
// an attempt limit, retrying only what `retryable` says is worth it (by default what
// kube-errors calls transient).
import { backoffMs } from './duration.js';
import { isConflict, isTransient } from './kube-errors.js';

export interface RetryOptions {
  /** First delay; doubles per attempt up to maxMs. 0 (with maxMs 0): the next attempt at once. */
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
  /**
   * Whether the failed attempt got somewhere before it failed (a long task whose steps each
   * commit): then the count starts over, so only failures in a row use the attempts up.
   */
  readonly progressed?: () => boolean;
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
      if (opts.progressed?.() === true) attempt = 0;
      const last = opts.attempts !== undefined && attempt + 1 >= opts.attempts;
      if (opts.signal?.aborted || last || !retryable(err)) throw err;
      const delay = backoffMs(attempt, opts);
      opts.onRetry?.(err, attempt, delay);
      if (delay === 0) continue; // a lost race is redone at once: nothing to wait for
      // Aborted while waiting: the error that made us wait says more than the abort.
      if (!(await wait(delay, opts.signal))) throw err;
    }
  }
}

/**
 * A read-modify-write redone when it lost a race (409 Conflict: someone wrote in between), on
 * a fresh read, which `fn` must do itself (attempt 0 may use what the caller already has). At
 * once unless baseMs says otherwise; any other error, or the last conflict, is thrown.
 */
export function retryOnConflict<T>(
  fn: (attempt: number) => Promise<T>,
  opts: Omit<RetryOptions, 'baseMs' | 'maxMs' | 'retryable' | 'attempts'> & {
    readonly attempts: number;
    readonly baseMs?: number;
    readonly maxMs?: number;
  },
): Promise<T> {
  const baseMs = opts.baseMs ?? 0;
  return retry(fn, { ...opts, baseMs, maxMs: opts.maxMs ?? baseMs, retryable: isConflict });
}

/**
 * Waits `ms`; resolves false at once if `signal` aborts. The global setTimeout (not
 * timers/promises) so that tests' fake timers drive it.
 */
function wait(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve(false);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
