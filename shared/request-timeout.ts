// The bound on one Kubernetes API request, for the coordinator's client-node (coordinator/
// kube-config.ts) and the agent's own client (agent/kube/client.ts) alike: a reply lost on a
// connection that died without a reset would otherwise be awaited forever. Kept free of
// client-node so that the agent can use it without loading that library.

/** Longer than any single API call noma makes (lists are paged; log reads stop at 10 s). */
export const REQUEST_TIMEOUT_MS = 60_000;

/**
 * A request that got no (complete) answer in time. Its name is the one AbortSignal.timeout
 * gives, so shared/kube-errors.ts counts it as a connection error, worth trying again.
 */
export class RequestTimeoutError extends Error {
  override readonly name = 'TimeoutError';

  constructor(what: string, timeoutMs: number, options?: ErrorOptions) {
    super(`${what}: no answer within ${timeoutMs} ms`, options);
  }
}

/** The signal one request runs under: its own deadline, and the caller's signal if any. */
export function requestSignal(timeoutMs: number, signal?: AbortSignal): AbortSignal {
  const deadline = AbortSignal.timeout(timeoutMs);
  return signal === undefined ? deadline : AbortSignal.any([signal, deadline]);
}
