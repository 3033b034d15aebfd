// Timers for delays a user chose (drainTimeout, an action's timeout): Node keeps a timer's delay
// in a signed 32-bit int and fires one set above 2^31-1 ms (~24.8 days) after 1 ms instead, so
// `drainTimeout: 720h` with forceDrain would delete pods around their PDBs at once. These chain
// timers of at most that length until the whole delay has passed.

/** The longest delay Node's setTimeout honours. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export interface LongTimeout {
  /** Stops it; `fn` is not called afterwards. Idempotent. */
  clear(): void;
  /** Lets the process exit while it waits (as Timeout.unref), now and for each chained timer. */
  unref(): LongTimeout;
}

/**
 * setTimeout for any delay: calls `fn` once after `ms`. Counts the remaining time down chunk by
 * chunk (each chunk on Node's monotonic timer clock), so a wall-clock jump moves nothing. A
 * negative or NaN delay means now, as with setTimeout; Infinity means never.
 */
export function setLongTimeout(fn: () => void, ms: number): LongTimeout {
  let left = Number.isNaN(ms) ? 0 : Math.max(0, ms);
  let timer: NodeJS.Timeout | undefined;
  let unref = false;
  let cleared = false;
  const arm = (): void => {
    const step = Math.min(left, MAX_TIMER_MS);
    left -= step;
    timer = setTimeout(() => {
      timer = undefined;
      if (cleared) return;
      if (left > 0) arm();
      else fn();
    }, step);
    if (unref) timer.unref();
  };
  if (left !== Number.POSITIVE_INFINITY) arm();
  const handle: LongTimeout = {
    clear() {
      cleared = true;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    },
    unref() {
      unref = true;
      timer?.unref();
      return handle;
    },
  };
  return handle;
}

/**
 * Resolves after `ms` (any length, as setLongTimeout), or as soon as `signal` aborts. Never
 * rejects: the caller looks at the signal when it needs to know which.
 */
export function sleepLong(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true) {
      resolve();
      return;
    }
    const done = (): void => {
      timer.clear();
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setLongTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
