// Pure: what `noma dashboard` shows, derived from the objects its watches hold. The page only
// draws this view model (static/): every decision about a node's state, a maintenance's rows
// and which Events belong where is made here, and table-tested (state.test.ts). Strings that
// come from the cluster are cut to a bound before they reach the page.
import type { CoreV1Event, V1Node } from '@kubernetes/client-node';
import type { NodeMaintenance, NodePhaseTimes, NodeStatus } from '../../shared/api/index.js';
import { nodeFacts, nodeHealth, type AgentState } from '../kube/node-facts.js';
import { checkMaintenances, stuckNodes } from '../status/render.js';

/** A tile's color: one state per node, the most telling one first (see tileState). */
export const TILE_STATES = ['ready', 'cordoned', 'maintenance', 'down', 'degraded'] as const;
export type TileState = (typeof TILE_STATES)[number];

export interface Tile {
  readonly name: string;
  readonly tier: string | null;
  readonly sku: string | null;
  readonly gpus: number;
  readonly state: TileState;
  /** The word on the tile: Ready, Cordoned, the node's phase in its maintenance, Down… */
  readonly label: string;
  /** `<namespace>/<name>` (or the name) of the maintenance that holds the node. */
  readonly maintenance: string | null;
  readonly phase: string | null;
  /** The step it runs, e.g. `2/3 Reboot`. */
  readonly step: string | null;
  readonly ready: boolean;
  readonly readyReason: string | null;
  readonly downSince: string | null;
  readonly schedulable: boolean;
  readonly gpuHealth: string | null;
  readonly downtimeTaint: string | null;
  readonly controlPlane: boolean;
  /** What the Node tells of its agent (its labels written, or nothing): never `/agents`. */
  readonly agent: AgentState;
}

/** A node's place in a maintenance's status, keyed by node name (livePhases). */
export interface NodeLive {
  readonly maintenance: string;
  readonly phase: string;
  readonly step: string | null;
}

/** Longest text of the cluster's that reaches the page (messages, reasons, selectors). */
export const MAX_TEXT = 300;

/** Pure: one line, at most `max` characters. */
export function bounded(text: string | undefined | null, max = MAX_TEXT): string | null {
  if (text === undefined || text === null) return null;
  const line = text.replace(/\s+/g, ' ').trim();
  if (line === '') return null;
  return line.length <= max ? line : `${line.slice(0, max - 1)}…`;
}

const keyOfMaintenance = (m: NodeMaintenance): string =>
  `${m.metadata.namespace ?? 'default'}/${m.metadata.name ?? ''}`;

/** Pure: `2/3 Reboot` (the step's name when it has one), or null when none runs. */
export function stepText(n: NodeStatus, m: NodeMaintenance): string | null {
  if (n.currentActionIndex === undefined) return null;
  const action = m.spec.actions[n.currentActionIndex];
  const what = action?.name ?? n.currentActionType ?? action?.type ?? '?';
  return `${n.currentActionIndex + 1}/${m.spec.actions.length} ${what}`;
}

/** Pure: each node's entries in the maintenances' status, by node name. */
export function livePhases(items: readonly NodeMaintenance[]): Map<string, NodeLive[]> {
  const map = new Map<string, NodeLive[]>();
  for (const m of items) {
    const maintenance = keyOfMaintenance(m);
    for (const n of m.status?.nodes ?? []) {
      const list = map.get(n.name) ?? [];
      list.push({ maintenance, phase: n.phase, step: stepText(n, m) });
      map.set(n.name, list);
    }
  }
  return map;
}

/**
 * Pure: the one color of a node. A node in maintenance is someone's work (its reboot makes it
 * NotReady on purpose): that first; then down, a degraded GPU, a cordon; else ready.
 */
export function tileState(f: {
  inMaintenance: boolean;
  ready: boolean;
  gpuHealth: string | undefined;
  schedulable: boolean;
}): TileState {
  if (f.inMaintenance) return 'maintenance';
  if (!f.ready) return 'down';
  if (f.gpuHealth === 'degraded') return 'degraded';
  if (!f.schedulable) return 'cordoned';
  return 'ready';
}

const STATE_LABELS: Record<TileState, string> = {
  ready: 'Ready',
  cordoned: 'Cordoned',
  maintenance: 'In maintenance',
  down: 'Down',
  degraded: 'GPU degraded',
};

/**
 * The status entry of the maintenance that holds the node: its claim names it (`ns/name`; the
 * older label only the name); without a name, the one maintenance that lists the node.
 */
function liveEntry(held: string | undefined, live: readonly NodeLive[]): NodeLive | undefined {
  if (held === undefined) return live.length === 1 ? live[0] : undefined;
  return live.find((l) => l.maintenance === held || l.maintenance.endsWith(`/${held}`));
}

/** Pure: a Node as a tile; `live`: its entries in the maintenances' status (livePhases). */
export function nodeTile(node: V1Node, live: readonly NodeLive[] = []): Tile {
  const f = nodeFacts(node);
  const h = nodeHealth(node);
  const state = tileState({ ...f, gpuHealth: h.gpuHealth });
  const entry = f.inMaintenance ? liveEntry(f.maintenance, live) : undefined;
  // The status is written after the claim (the cordon's own patch): a claimed node that the
  // status still has Pending is at least where its claim says.
  const phase =
    (entry?.phase === 'Pending' ? undefined : entry?.phase) ?? h.phase ?? entry?.phase ?? null;
  return {
    name: f.name,
    tier: bounded(f.tier, 63),
    sku: bounded(f.sku, 63),
    gpus: f.gpus,
    state,
    label: state === 'maintenance' && phase !== null ? phase : STATE_LABELS[state],
    maintenance: bounded(entry?.maintenance ?? f.maintenance, 253),
    phase: state === 'maintenance' ? phase : null,
    step: entry?.step ?? null,
    ready: f.ready,
    readyReason: bounded(h.readyReason, 100),
    downSince: h.downSince ?? null,
    schedulable: f.schedulable,
    gpuHealth: bounded(h.gpuHealth, 63),
    downtimeTaint: bounded(h.downtimeTaint, 200),
    controlPlane: f.controlPlane,
    agent: f.agent,
  };
}

/** When a node entered each state, in the order a node goes through them. */
export const TIMELINE_KEYS = [
  'scheduled',
  'cordoned',
  'drained',
  'actionStarted',
  'completed',
  'failed',
  'restored',
  'slaExpired',
] as const satisfies readonly (keyof NodePhaseTimes)[];
export type TimelineKey = (typeof TIMELINE_KEYS)[number];

export interface TimelineMark {
  readonly key: TimelineKey;
  readonly at: string;
}

/**
 * Pure: phaseTimes as marks in time order (a retry overwrites a key, so the order of the keys
 * alone can lie); equal times keep the keys' order. Times that do not parse are left out.
 */
export function timeline(times: NodePhaseTimes | undefined): TimelineMark[] {
  if (times === undefined) return [];
  return TIMELINE_KEYS.flatMap((key, order) => {
    const at = times[key];
    const ms = at === undefined ? NaN : Date.parse(at);
    return Number.isNaN(ms) || at === undefined ? [] : [{ key, at, ms, order }];
  })
    .sort((a, b) => a.ms - b.ms || a.order - b.order)
    .map(({ key, at }) => ({ key, at }));
}

export interface DrainView {
  readonly total: number;
  readonly evicted: number;
  readonly pending: number;
  /** `PodDisruptionBudget ns/name` or `Pod ns/name`. */
  readonly blockedBy: string | null;
  readonly blockedReason: string | null;
}

export interface NodeRow {
  readonly node: string;
  readonly phase: string;
  /** Named by the maintenance's Stuck condition. */
  readonly stuck: boolean;
  readonly step: string | null;
  readonly drain: DrainView | null;
  readonly exitCode: number | null;
  readonly message: string | null;
  readonly timeline: readonly TimelineMark[];
  readonly startedAt: string | null;
  readonly completedAt: string | null;
}

function drainView(n: NodeStatus): DrainView | null {
  const d = n.drain;
  if (d === undefined) return null;
  const b = d.blockedBy;
  return {
    total: d.total,
    evicted: d.evicted,
    pending: d.pending,
    blockedBy:
      b === undefined
        ? null
        : bounded(`${b.kind} ${b.namespace === undefined ? '' : `${b.namespace}/`}${b.name}`),
    blockedReason: bounded(b?.message),
  };
}

/**
 * Pure: a row per node: those with a status entry, then those selected and not started yet
 * (observedNodes without an entry), which are Pending, as `noma status` shows them.
 */
export function nodeRows(m: NodeMaintenance): NodeRow[] {
  const stuck = stuckNodes(m);
  const reported = m.status?.nodes ?? [];
  const seen = new Set(reported.map((n) => n.name));
  const waiting = (m.status?.observedNodes ?? []).filter((name) => !seen.has(name));
  return [
    ...reported.map((n) => ({
      node: n.name,
      phase: n.phase,
      stuck: stuck.has(n.name),
      step: stepText(n, m),
      drain: drainView(n),
      exitCode: n.lastExitCode ?? null,
      message: bounded(n.message),
      timeline: timeline(n.phaseTimes),
      startedAt: n.startedAt ?? null,
      completedAt: n.completedAt ?? null,
    })),
    ...waiting.map((node) => ({
      node,
      phase: 'Pending',
      stuck: false,
      step: null,
      drain: null,
      exitCode: null,
      message: null,
      timeline: [],
      startedAt: null,
      completedAt: null,
    })),
  ];
}

export interface EventRow {
  readonly key: string;
  /** The latest occurrence. */
  readonly at: string | null;
  readonly type: string;
  readonly reason: string;
  readonly message: string;
  readonly count: number;
  readonly kind: string;
  readonly namespace: string | null;
  readonly name: string;
  readonly source: string | null;
  /**
   * The Event's resourceVersion as a number: only to order Events of the same second (the
   * coordinator's times are to the second) in the order the API server stored them.
   */
  readonly seq: number;
}

const iso = (t: Date | string | undefined): string | undefined => {
  if (t === undefined) return undefined;
  const d = t instanceof Date ? t : new Date(t);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
};

/** Pure: an Event as a row; its time is the last occurrence, as kubectl shows it. */
export function eventRow(e: CoreV1Event): EventRow {
  const o = e.involvedObject;
  const at =
    iso(e.series?.lastObservedTime) ??
    iso(e.lastTimestamp) ??
    iso(e.eventTime) ??
    iso(e.firstTimestamp) ??
    iso(e.metadata.creationTimestamp);
  return {
    key: e.metadata.uid ?? `${e.metadata.namespace ?? ''}/${e.metadata.name ?? ''}`,
    at: at ?? null,
    type: bounded(e.type, 20) ?? 'Normal',
    reason: bounded(e.reason, 80) ?? '',
    message: bounded(e.message) ?? '',
    count: e.series?.count ?? e.count ?? 1,
    kind: o.kind ?? '',
    namespace: o.namespace ?? null,
    name: o.name ?? '',
    source: bounded(e.reportingComponent ?? e.source?.component, 80),
    seq: Number(e.metadata.resourceVersion) || 0,
  };
}

/** Newest first (the same second: the later stored first); rows without a time last. */
export const newestFirst = (a: EventRow, b: EventRow): number =>
  (b.at ?? '').localeCompare(a.at ?? '') || b.seq - a.seq || a.key.localeCompare(b.key);

/** How many Events a maintenance shows, and the fleet's node Events. */
export const MAX_EVENTS = 15;

/**
 * Pure: a maintenance's Events: those on the NodeMaintenance, and those on its nodes since it
 * was created (the coordinator's cordons, drains, reboots; the kubelet's NotReady). Newest
 * first, at most MAX_EVENTS.
 */
export function maintenanceEvents(m: NodeMaintenance, events: readonly EventRow[]): EventRow[] {
  const ns = m.metadata.namespace ?? 'default';
  const nodes = new Set([
    ...(m.status?.observedNodes ?? []),
    ...(m.status?.nodes ?? []).map((n) => n.name),
  ]);
  const since = iso(m.metadata.creationTimestamp) ?? '';
  return events
    .filter((e) =>
      e.kind === 'NodeMaintenance'
        ? e.name === m.metadata.name && (e.namespace ?? 'default') === ns
        : e.kind === 'Node' && nodes.has(e.name) && (e.at ?? '') >= since,
    )
    .sort(newestFirst)
    .slice(0, MAX_EVENTS);
}

export interface ConditionView {
  readonly type: string;
  readonly status: string;
  readonly reason: string | null;
  readonly message: string | null;
}

export interface MaintenanceView {
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  readonly phase: string;
  readonly progress: string | null;
  readonly ticket: string;
  readonly operation: string;
  readonly selector: string;
  /** Its steps by name, after the cordon and drain every maintenance does. */
  readonly steps: readonly string[];
  readonly paused: boolean;
  readonly createdAt: string | null;
  readonly startedAt: string | null;
  readonly completedAt: string | null;
  readonly conditions: readonly ConditionView[];
  readonly rows: readonly NodeRow[];
  readonly events: readonly EventRow[];
}

/** Pure: a maintenance as the page shows it, with its Events (eventRow'd). */
export function maintenanceView(m: NodeMaintenance, events: readonly EventRow[]): MaintenanceView {
  const s = m.status;
  return {
    key: keyOfMaintenance(m),
    namespace: m.metadata.namespace ?? 'default',
    name: m.metadata.name ?? '',
    phase: s?.phase ?? 'Pending',
    progress: s?.progress ?? null,
    ticket: m.spec.linearTicket,
    operation: bounded(m.spec.operationName, 100) ?? '',
    selector: bounded(m.spec.nodeSelector, 200) ?? '',
    steps: m.spec.actions.map((a) => bounded(a.name ?? a.type, 60) ?? a.type),
    paused: m.spec.paused === true,
    createdAt: m.metadata.creationTimestamp ?? null,
    startedAt: s?.startedAt ?? null,
    completedAt: s?.completedAt ?? null,
    conditions: (s?.conditions ?? []).map((c) => ({
      type: c.type,
      status: c.status,
      reason: bounded(c.reason, 80),
      message: bounded(c.message),
    })),
    rows: nodeRows(m),
    events: maintenanceEvents(m, events),
  };
}

/** What a watch is doing: listing the first time, live, or failing (and retried). */
export interface SourceState {
  readonly state: 'connecting' | 'live' | 'trouble';
  readonly error: string | null;
}
export const SOURCE_NAMES = ['nodes', 'maintenances', 'maintenanceEvents', 'nodeEvents'] as const;
export type SourceName = (typeof SOURCE_NAMES)[number];

/** Who is looking, at what: the kubeconfig's context and the scope of the watches. */
export interface ViewMeta {
  readonly context: string;
  readonly user: string;
  readonly server: string;
  /** The maintenances' namespace, or null for every namespace. */
  readonly namespace: string | null;
  readonly selector: string | null;
  readonly version: string;
}

export interface DashboardView {
  readonly meta: ViewMeta;
  /** By name. */
  readonly tiles: readonly Tile[];
  /** By key (`namespace/name`). */
  readonly maintenances: readonly MaintenanceView[];
  /** The latest Events on the nodes shown, newest first. */
  readonly nodeEvents: readonly EventRow[];
  readonly sources: Readonly<Record<SourceName, SourceState>>;
  /** NodeMaintenances that do not match the schema (left out). */
  readonly warnings: readonly string[];
}

export interface ViewInput {
  readonly meta: ViewMeta;
  readonly nodes: Iterable<V1Node>;
  /** As read (unchecked): checked against the schema here. */
  readonly maintenances: Iterable<unknown>;
  readonly events: Iterable<CoreV1Event>;
  readonly sources: Readonly<Record<SourceName, SourceState>>;
}

const byString =
  <T>(key: (t: T) => string) =>
  (a: T, b: T): number =>
    key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;

/** Pure: the whole view from what the watches hold. */
export function buildView(input: ViewInput): DashboardView {
  const checked = checkMaintenances(input.maintenances);
  const live = livePhases(checked.items);
  const tiles = [...input.nodes]
    .map((n) => nodeTile(n, live.get(n.metadata?.name ?? '')))
    .sort(byString((t) => t.name));
  const events = [...input.events].map(eventRow);
  const shown = new Set(tiles.map((t) => t.name));
  return {
    meta: input.meta,
    tiles,
    maintenances: checked.items.map((m) => maintenanceView(m, events)).sort(byString((m) => m.key)),
    nodeEvents: events
      .filter((e) => e.kind === 'Node' && shown.has(e.name))
      .sort(newestFirst)
      .slice(0, MAX_EVENTS),
    sources: input.sources,
    warnings: checked.problems.slice(0, 20).map((p) => bounded(p) ?? ''),
  };
}

/** Entries of a keyed list that changed (`set`: new or different) or went (`del`: keys). */
export interface KeyedPatch<T> {
  readonly set: readonly T[];
  readonly del: readonly string[];
}

/** What changed between two views; a part that did not change is absent. */
export interface ViewPatch {
  readonly meta?: ViewMeta;
  readonly tiles?: KeyedPatch<Tile>;
  readonly maintenances?: KeyedPatch<MaintenanceView>;
  readonly nodeEvents?: readonly EventRow[];
  readonly sources?: Readonly<Record<SourceName, SourceState>>;
  readonly warnings?: readonly string[];
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

function keyedPatch<T>(
  before: readonly T[],
  after: readonly T[],
  key: (t: T) => string,
): KeyedPatch<T> | undefined {
  const old = new Map(before.map((t) => [key(t), t]));
  const now = new Set(after.map(key));
  const set = after.filter((t) => !same(old.get(key(t)), t));
  const del = [...old.keys()].filter((k) => !now.has(k));
  return set.length === 0 && del.length === 0 ? undefined : { set, del };
}

/**
 * Pure: the patch that turns `prev` into `next` (static/model.js applyPatch), or undefined when
 * nothing changed. Tiles and maintenances by key, so a change to one node sends one tile.
 */
export function diffView(prev: DashboardView, next: DashboardView): ViewPatch | undefined {
  const tiles = keyedPatch(prev.tiles, next.tiles, (t) => t.name);
  const maintenances = keyedPatch(prev.maintenances, next.maintenances, (m) => m.key);
  const patch: ViewPatch = {
    ...(same(prev.meta, next.meta) ? {} : { meta: next.meta }),
    ...(tiles === undefined ? {} : { tiles }),
    ...(maintenances === undefined ? {} : { maintenances }),
    ...(same(prev.nodeEvents, next.nodeEvents) ? {} : { nodeEvents: next.nodeEvents }),
    ...(same(prev.sources, next.sources) ? {} : { sources: next.sources }),
    ...(same(prev.warnings, next.warnings) ? {} : { warnings: next.warnings }),
  };
  return Object.keys(patch).length === 0 ? undefined : patch;
}

/** Pure: how long to wait before the next push so that pushes are at least `minMs` apart. */
export function pushDelay(lastPushAt: number | undefined, now: number, minMs: number): number {
  return lastPushAt === undefined ? 0 : Math.max(0, lastPushAt + minMs - now);
}
