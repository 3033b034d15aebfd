// Pure helpers of the page (no DOM): the view as the server pushes it (a snapshot, then
// patches made by cli/dashboard/state.ts diffView), and what the page derives for drawing.
// Loaded by the browser as a module, and by cli/dashboard/state.test.ts.

/** @typedef {{ set: object[], del: string[] }} KeyedPatch */

const byKey = (key) => (a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);

function applyKeyed(list, patch, key) {
  if (patch === undefined) return list;
  const map = new Map(list.map((item) => [key(item), item]));
  for (const k of patch.del) map.delete(k);
  for (const item of patch.set) map.set(key(item), item);
  return [...map.values()].sort(byKey(key));
}

/** The view after a patch: tiles by name and maintenances by key, as the server sorts them. */
export function applyPatch(view, patch) {
  return {
    ...view,
    ...(patch.meta === undefined ? {} : { meta: patch.meta }),
    tiles: applyKeyed(view.tiles, patch.tiles, (t) => t.name),
    maintenances: applyKeyed(view.maintenances, patch.maintenances, (m) => m.key),
    ...(patch.nodeEvents === undefined ? {} : { nodeEvents: patch.nodeEvents }),
    ...(patch.sources === undefined ? {} : { sources: patch.sources }),
    ...(patch.warnings === undefined ? {} : { warnings: patch.warnings }),
  };
}

export const NO_TIER = 'no tier';
export const NO_SKU = 'no GPU SKU';

/** Tiles grouped by tier, then GPU SKU; groups in name order, those without a tier last. */
export function groupTiles(tiles) {
  const groups = new Map();
  for (const t of tiles) {
    const tier = t.tier ?? NO_TIER;
    const sku = t.sku ?? NO_SKU;
    const key = `${t.tier === null ? '~' : ''}${tier} / ${t.sku === null ? '~' : ''}${sku}`;
    const g = groups.get(key) ?? { key, tier, sku, tiles: [], gpus: 0 };
    g.tiles.push(t);
    g.gpus += t.gpus;
    groups.set(key, g);
  }
  return [...groups.values()].sort(byKey((g) => g.key));
}

/** How many tiles are in each state. */
export function countStates(tiles) {
  const counts = { ready: 0, cordoned: 0, maintenance: 0, down: 0, degraded: 0 };
  for (const t of tiles) counts[t.state] = (counts[t.state] ?? 0) + 1;
  return counts;
}

const ACTIVE = ['Running', 'Paused', 'Halted', 'Pending'];

/** Maintenances that need eyes first (running, paused, halted), then the latest finished. */
export function orderMaintenances(list) {
  const rank = (m) => {
    const i = ACTIVE.indexOf(m.phase);
    return i === -1 ? ACTIVE.length : i;
  };
  const when = (m) => m.completedAt ?? m.startedAt ?? m.createdAt ?? '';
  return [...list].sort(
    (a, b) => rank(a) - rank(b) || when(b).localeCompare(when(a)) || a.key.localeCompare(b.key),
  );
}

const ROW_RANK = {
  Failed: 0,
  InAction: 2,
  Draining: 2,
  Drained: 2,
  Cordoned: 2,
  Pending: 3,
  Succeeded: 4,
  Restored: 4,
};

/** A maintenance's rows, those that need eyes first: failed, stuck, in progress, waiting, done. */
export function orderRows(rows) {
  const rank = (r) => (r.stuck ? 1 : (ROW_RANK[r.phase] ?? 2));
  return [...rows].sort((a, b) => rank(a) - rank(b) || a.node.localeCompare(b.node));
}

/** Final marks are points in time; the others open a stretch that lasts until the next mark. */
const FINAL = new Set(['completed', 'failed', 'restored']);

/**
 * A node's timeline as stretches of a track from `startMs` to `endMs` (percentages): each mark
 * opens a stretch until the next one, the last one until `nowMs` unless the node is done.
 */
export function timelineSegments(marks, startMs, endMs, nowMs) {
  const span = Math.max(1, endMs - startMs);
  const pct = (ms) => Math.min(100, Math.max(0, ((ms - startMs) / span) * 100));
  return marks
    .filter((m) => m.key !== 'slaExpired')
    .map((m, i, all) => {
      const from = Date.parse(m.at);
      const next = all[i + 1];
      const to = next !== undefined ? Date.parse(next.at) : FINAL.has(m.key) ? from : nowMs;
      const left = pct(from);
      return { key: m.key, at: m.at, left, width: Math.max(0, pct(to) - left) };
    });
}

/** The span a maintenance's timelines are drawn on: its start to its end (or now). */
export function timelineSpan(m, nowMs) {
  const times = m.rows.flatMap((r) => r.timeline.map((t) => Date.parse(t.at)));
  const start = Date.parse(m.startedAt ?? m.createdAt ?? '');
  const startMs = Math.min(...times, Number.isNaN(start) ? Infinity : start);
  const end = m.completedAt === null ? nowMs : Date.parse(m.completedAt);
  const endMs = Math.max(...times, Number.isNaN(end) ? nowMs : end);
  return Number.isFinite(startMs) ? { startMs, endMs } : { startMs: nowMs, endMs: nowMs };
}

/** `42s`, `3m 5s`, `2h 4m`, `3d 1h`. */
export function formatDuration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 === 0 ? `${m}m` : `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return m % 60 === 0 ? `${h}h` : `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** `14:03:07`, local time, for a timestamp of the cluster's. */
export function clock(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleTimeString([], {
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hour12: false,
  });
}

export const TIMELINE_LABELS = {
  scheduled: 'scheduled',
  cordoned: 'cordoned',
  drained: 'drained',
  actionStarted: 'step started',
  completed: 'completed',
  failed: 'failed',
  restored: 'restored',
  slaExpired: 'drain SLA expired',
};
