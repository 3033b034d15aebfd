// The one place that classifies errors from the Kubernetes API (and the connection to it), for
// the coordinator, the agent and the CLI alike: whether to try again, and what the error was.

/**
 * The HTTP status of an API error, if it has one: client-node's API calls put it in `code`, its
 * Watch in `statusCode`.
 */
export const statusCode = (err: unknown): number | undefined => {
  if (typeof err !== 'object' || err === null) return undefined;
  const { code, statusCode: watchCode } = err as { code?: unknown; statusCode?: unknown };
  if (typeof code === 'number') return code;
  return typeof watchCode === 'number' ? watchCode : undefined;
};

export const isNotFound = (err: unknown): boolean => statusCode(err) === 404;
export const isConflict = (err: unknown): boolean => statusCode(err) === 409;

/**
 * Pure: an error the connection produced rather than the API server: refused, reset, cut
 * short, or aborted by our own request timeout.
 */
export function isConnectionError(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  if (statusCode(err) !== undefined) return false;
  const e = err as { name?: unknown; code?: unknown; cause?: unknown };
  if (e.name === 'FetchError' || e.name === 'AbortError' || e.name === 'TimeoutError') return true;
  if (typeof e.code === 'string' && /^(E[A-Z_]+|UND_ERR_[A-Z_]+)$/.test(e.code)) return true;
  // fetch wraps the socket's error ("fetch failed", cause: ECONNREFUSED).
  return e.cause !== undefined && e.cause !== err && isConnectionError(e.cause);
}

/**
 * Pure: an API error worth trying again — the API server unreachable or overloaded, or a
 * conflict — as opposed to a refusal (forbidden, invalid, not found) that a retry would only
 * repeat. Anything else without an HTTP status is a bug, and retrying it would only hide it.
 */
export function isTransient(err: unknown): boolean {
  const code = statusCode(err);
  if (code !== undefined) return code === 409 || code === 429 || code >= 500;
  return isConnectionError(err);
}

/** The API server's message for an error ("404 NotFound: nodes \"x\" not found"), unbounded. */
export function describeApiError(err: unknown): string {
  let body: unknown = (err as { body?: unknown } | null)?.body;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body);
    } catch {
      // not JSON: the text is the message
    }
  }
  const status = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
  const message =
    typeof status['message'] === 'string'
      ? status['message']
      : typeof body === 'string' && body !== ''
        ? body
        : err instanceof Error
          ? err.message
          : String(err);
  const code = statusCode(err);
  const reason = typeof status['reason'] === 'string' ? ` ${status['reason']}` : '';
  return `${code === undefined ? '' : String(code)}${reason}: ${message}`.replace(/^: /, '');
}
