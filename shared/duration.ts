const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
};

/** The longest duration noma accepts anywhere (the CRD's CEL rule, flags, timers): 30 days. */
export const MAX_DURATION = '720h';
export const MAX_DURATION_MS = 720 * 3_600_000;

/**
 * Parses a Go-style duration ("5m", "1h30m", "250ms", "0") into milliseconds, the syntax the
 * NodeMaintenance API uses too. Returns undefined for anything else, including a sign, and for
 * anything longer than MAX_DURATION.
 */
export function parseDuration(text: string): number | undefined {
  if (text === '0') return 0;
  const part = /([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)/y;
  let total = 0;
  let matched = 0;
  while (matched < text.length) {
    part.lastIndex = matched;
    const m = part.exec(text);
    if (m === null) return undefined;
    total += Number(m[1]) * (UNIT_MS[m[2] ?? ''] ?? Number.NaN);
    matched = part.lastIndex;
  }
  return matched === 0 || !Number.isFinite(total) || total > MAX_DURATION_MS ? undefined : total;
}
/** The delay before retry number `attempt` (0-based): doubling, capped, with ±20 % jitter. */
export function backoffMs(
  attempt: number,
  opts: { baseMs: number; maxMs: number },
  random: () => number = Math.random,
): number {
  const raw = Math.min(opts.maxMs, opts.baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(raw * (0.8 + 0.4 * random()));
}
