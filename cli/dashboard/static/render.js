// Drawing the view: DOM built with textContent only (what the cluster says is never parsed as
// HTML). Tiles are kept by node name and changed in place, so that a node that changes state
// is the same element with a new data-state (what a screen reader or a test follows).
/* global document, CSS */
import {
  TIMELINE_LABELS,
  clock,
  countStates,
  formatDuration,
  groupTiles,
  orderMaintenances,
  orderRows,
  timelineSegments,
  timelineSpan,
} from './model.js';

/** An element with attributes (`class`, `data-*`, …) and children (strings become text). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined && v !== null && v !== false)
      el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(typeof c === 'string' || typeof c === 'number' ? String(c) : c);
  }
  return el;
}

export const STATE_TEXT = {
  ready: 'Ready',
  cordoned: 'Cordoned',
  maintenance: 'In maintenance',
  down: 'Down (NotReady)',
  degraded: 'GPU degraded',
};

function tileBadges(t) {
  const badges = [];
  if (t.state !== 'down' && !t.ready) badges.push(['warn', 'NotReady']);
  if (t.state !== 'degraded' && t.gpuHealth === 'degraded') badges.push(['warn', 'GPU degraded']);
  if (t.downtimeTaint !== null) badges.push(['warn', 'downtime taint']);
  if (t.state === 'maintenance' && !t.schedulable) badges.push(['info', 'cordoned']);
  if (t.controlPlane) badges.push(['info', 'control plane']);
  return badges.map(([kind, text]) => h('span', { class: `badge badge-${kind}` }, text));
}

function tileTitle(t) {
  const lines = [
    `${t.name}: ${STATE_TEXT[t.state]}${t.phase === null ? '' : ` (${t.phase})`}`,
    t.maintenance === null
      ? null
      : `maintenance ${t.maintenance}${t.step === null ? '' : `, step ${t.step}`}`,
    t.ready
      ? null
      : `NotReady${t.readyReason === null ? '' : `: ${t.readyReason}`}${t.downSince === null ? '' : ` since ${clock(t.downSince)}`}`,
    t.downtimeTaint === null ? null : `taint ${t.downtimeTaint}`,
    `GPUs ${t.gpus}${t.gpuHealth === null ? '' : `, health ${t.gpuHealth}`}`,
    `agent: ${t.agent === 'labeled' ? 'has labeled the node' : 'unknown'}`,
  ];
  return lines.filter((l) => l !== null).join('\n');
}

function fillTile(el, t) {
  el.dataset.state = t.state;
  if (t.phase === null) delete el.dataset.phase;
  else el.dataset.phase = t.phase;
  el.title = tileTitle(t);
  el.replaceChildren(
    h('span', { class: 'tile-name' }, t.name),
    h('span', { class: 'tile-label' }, t.label),
    h(
      'span',
      { class: 'tile-detail' },
      // In maintenance: its step, else its name (the namespace is in the tile's title).
      t.step ??
        (t.maintenance === null
          ? `${t.gpus} GPU${t.gpus === 1 ? '' : 's'}`
          : t.maintenance.slice(t.maintenance.indexOf('/') + 1)),
    ),
    h(
      'span',
      { class: `tile-agent agent-${t.agent}` },
      t.agent === 'labeled' ? 'agent: labeled' : 'agent: unknown',
    ),
    h('span', { class: 'tile-badges' }, tileBadges(t)),
  );
}

const tileEls = new Map();
const tileJson = new Map();

/** The node tiles, grouped; existing tiles change in place. */
export function renderTiles(root, tiles) {
  const names = new Set(tiles.map((t) => t.name));
  for (const [name, el] of tileEls) {
    if (!names.has(name)) {
      el.remove();
      tileEls.delete(name);
      tileJson.delete(name);
    }
  }
  const groups = groupTiles(tiles);
  const sections = groups.map((g) => {
    let section = root.querySelector(`:scope > section[data-group="${CSS.escape(g.key)}"]`);
    if (section === null) {
      section = h('section', { class: 'group', 'data-group': g.key });
      section.append(h('h3', {}), h('ul', { class: 'tiles', role: 'list' }));
    }
    section
      .querySelector('h3')
      .replaceChildren(
        h('span', { class: 'group-tier' }, g.tier),
        h('span', { class: 'group-sku' }, g.sku),
        h(
          'span',
          { class: 'group-count' },
          `${g.tiles.length} node${g.tiles.length === 1 ? '' : 's'} · ${g.gpus} GPUs`,
        ),
      );
    const list = section.querySelector('ul');
    g.tiles.forEach((t, i) => {
      let el = tileEls.get(t.name);
      if (el === undefined) {
        el = h('li', { class: 'tile', 'data-node': t.name });
        tileEls.set(t.name, el);
      }
      const json = JSON.stringify(t);
      if (tileJson.get(t.name) !== json) {
        fillTile(el, t);
        tileJson.set(t.name, json);
      }
      if (list.children[i] !== el) list.insertBefore(el, list.children[i] ?? null);
    });
    return section;
  });
  const keep = new Set(sections);
  for (const old of [...root.children]) if (!keep.has(old)) old.remove();
  sections.forEach((s, i) => {
    if (root.children[i] !== s) root.insertBefore(s, root.children[i] ?? null);
  });
  if (tiles.length === 0) root.replaceChildren(h('p', { class: 'empty' }, 'No nodes (yet).'));
}

export function renderLegend(root, tiles) {
  const counts = countStates(tiles);
  root.replaceChildren(
    ...Object.entries(STATE_TEXT).map(([state, text]) =>
      h(
        'li',
        { 'data-state': state },
        h('span', { class: 'swatch', 'aria-hidden': 'true' }),
        `${text} `,
        h('span', { class: 'legend-count' }, String(counts[state] ?? 0)),
      ),
    ),
  );
}

function drainCell(d) {
  if (d === null) return '–';
  return `${d.evicted}/${d.total} evicted${d.pending > 0 ? `, ${d.pending} pending` : ''}`;
}

function timelineCell(row, span, nowMs) {
  if (row.timeline.length === 0) return h('span', { class: 'muted' }, 'not started');
  const track = h('div', { class: 'track', 'aria-hidden': 'true' });
  for (const s of timelineSegments(row.timeline, span.startMs, span.endMs, nowMs)) {
    const seg = h('span', { class: `seg seg-${s.key}` });
    // Through the CSSOM: the page's CSP refuses style attributes.
    seg.style.left = `${s.left.toFixed(2)}%`;
    seg.style.width = `max(4px, ${s.width.toFixed(2)}%)`;
    track.append(seg);
  }
  const t0 = Date.parse(row.timeline[0].at);
  const marks = h(
    'ol',
    { class: 'marks' },
    row.timeline.map((m, i) =>
      h(
        'li',
        {},
        h('span', { class: `dot seg-${m.key}`, 'aria-hidden': 'true' }),
        `${TIMELINE_LABELS[m.key] ?? m.key} `,
        h(
          'time',
          { datetime: m.at },
          i === 0 ? clock(m.at) : `+${formatDuration(Date.parse(m.at) - t0)}`,
        ),
      ),
    ),
  );
  return h('div', { class: 'timeline' }, track, marks);
}

const MAX_ROWS = 100;

function rowsTable(m, nowMs) {
  const span = timelineSpan(m, nowMs);
  const rows = orderRows(m.rows);
  const body = rows
    .slice(0, MAX_ROWS)
    .map((r) =>
      h(
        'tr',
        { 'data-node': r.node, 'data-phase': r.phase },
        h('th', { scope: 'row' }, r.node),
        h(
          'td',
          {},
          h('span', { class: `chip node-phase phase-${r.phase}` }, r.phase),
          r.stuck ? h('span', { class: 'badge badge-warn' }, 'stuck') : null,
        ),
        h('td', {}, r.step ?? '–'),
        h('td', {}, drainCell(r.drain)),
        h(
          'td',
          { class: r.drain?.blockedBy ? 'blocked' : '' },
          r.drain?.blockedBy ?? '–',
          r.drain?.blockedReason ? h('div', { class: 'why' }, r.drain.blockedReason) : null,
          r.message ? h('div', { class: 'why' }, r.message) : null,
        ),
        h('td', { class: 'tl' }, timelineCell(r, span, nowMs)),
      ),
    );
  const more =
    rows.length > MAX_ROWS
      ? h('p', { class: 'muted' }, `and ${rows.length - MAX_ROWS} more nodes (those done last)`)
      : null;
  return [
    h(
      'table',
      { class: 'rows' },
      h('caption', { class: 'sr-only' }, `Nodes of ${m.key}`),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['Node', 'Phase', 'Step', 'Drain', 'Blocked by / message', 'Timeline'].map((c) =>
            h('th', { scope: 'col' }, c),
          ),
        ),
      ),
      h('tbody', {}, body),
    ),
    more,
  ];
}

const KIND_TEXT = { NodeMaintenance: 'maintenance', Node: 'node' };

function eventItem(e) {
  return h(
    'li',
    { class: `ev ev-${e.type}` },
    h('time', { datetime: e.at ?? '' }, e.at === null ? '' : clock(e.at)),
    h('span', { class: 'ev-type' }, e.type),
    h('span', { class: 'ev-reason' }, e.reason),
    h('span', { class: 'ev-obj' }, `${KIND_TEXT[e.kind] ?? e.kind} ${e.name}`),
    h('span', { class: 'ev-msg' }, e.message + (e.count > 1 ? ` (×${e.count})` : '')),
  );
}

/** The newest `shown` Events, the older ones folded. */
function eventList(events, empty, shown = 6) {
  if (events.length === 0) return h('p', { class: 'muted' }, empty);
  const older = events.slice(shown);
  return [
    h('ol', { class: 'events' }, events.slice(0, shown).map(eventItem)),
    older.length === 0
      ? null
      : h(
          'details',
          { class: 'older' },
          h('summary', {}, `${older.length} older`),
          h('ol', { class: 'events' }, older.map(eventItem)),
        ),
  ];
}

/** Conditions worth a line: the true ones that hold it (Stuck, Degraded…), with their message. */
function conditionLines(m) {
  const lines = m.conditions
    .filter((c) => c.status === 'True' && !['Ready', 'Progressing'].includes(c.type))
    .map((c) =>
      h(
        'li',
        { class: 'cond' },
        h('b', {}, c.type),
        c.reason ? ` ${c.reason}` : '',
        c.message ? `: ${c.message}` : '',
      ),
    );
  if (m.paused)
    lines.unshift(
      h('li', { class: 'cond' }, h('b', {}, 'Paused'), ': no node starts or begins its next step'),
    );
  return lines.length === 0 ? null : h('ul', { class: 'conds' }, lines);
}

function maintenanceCard(m, nowMs) {
  const started = m.startedAt ?? m.createdAt;
  const ended = m.completedAt;
  return h(
    'article',
    { class: 'maint', 'data-key': m.key, 'data-phase': m.phase, 'aria-labelledby': `m-${m.key}` },
    h(
      'header',
      {},
      h('h3', { id: `m-${m.key}` }, m.key),
      h('span', { class: `chip phase-${m.phase}` }, m.phase),
      h('span', { class: 'progress' }, m.progress === null ? '' : `nodes ${m.progress}`),
    ),
    h(
      'dl',
      { class: 'facts' },
      h('dt', {}, 'ticket'),
      h('dd', {}, m.ticket),
      h('dt', {}, 'operation'),
      h('dd', {}, m.operation),
      h('dt', {}, 'selector'),
      h('dd', {}, h('code', {}, m.selector)),
      h('dt', {}, 'steps'),
      h('dd', {}, ['cordon', 'drain', ...m.steps].join(' → ')),
      started === null ? null : h('dt', {}, ended === null ? 'running for' : 'took'),
      started === null
        ? null
        : h(
            'dd',
            {},
            formatDuration((ended === null ? nowMs : Date.parse(ended)) - Date.parse(started)),
            ` (since ${clock(started)})`,
          ),
    ),
    conditionLines(m),
    m.rows.length === 0 ? h('p', { class: 'muted' }, 'No node selected yet.') : rowsTable(m, nowMs),
    h(
      'details',
      { class: 'ev-box', open: true },
      h('summary', {}, `Events (${m.events.length})`),
      eventList(m.events, 'No Events.'),
    ),
  );
}

const cardJson = new Map();
const cardEls = new Map();

/** The maintenances; a card is rebuilt only when it changed (or `force`: times move on). */
export function renderMaintenances(root, maintenances, nowMs, force = false) {
  const ordered = orderMaintenances(maintenances);
  const keys = new Set(ordered.map((m) => m.key));
  for (const [key, el] of cardEls) {
    if (!keys.has(key)) {
      el.remove();
      cardEls.delete(key);
      cardJson.delete(key);
    }
  }
  ordered.forEach((m, i) => {
    const json = JSON.stringify(m);
    let el = cardEls.get(m.key);
    if (el === undefined || force || cardJson.get(m.key) !== json) {
      const card = maintenanceCard(m, nowMs);
      const wasOpen = el?.querySelector('details.ev-box')?.open;
      if (wasOpen === false) card.querySelector('details.ev-box').open = false;
      if (el !== undefined) el.replaceWith(card);
      el = card;
      cardEls.set(m.key, el);
      cardJson.set(m.key, json);
    }
    if (root.children[i] !== el) root.insertBefore(el, root.children[i] ?? null);
  });
  const empty = root.querySelector(':scope > p.empty');
  if (ordered.length === 0 && empty === null)
    root.append(h('p', { class: 'empty' }, 'No NodeMaintenances.'));
  if (ordered.length > 0 && empty !== null) empty.remove();
}

export function renderNodeEvents(root, events) {
  root.replaceChildren(
    ...[eventList(events, 'No Events on these nodes.', 8)].flat().filter(Boolean),
  );
}

export function renderMeta(root, meta) {
  root.replaceChildren(
    'context ',
    h('b', {}, meta.context || '(none)'),
    ' · user ',
    h('b', {}, meta.user || '(none)'),
    ' · nodes ',
    h('b', {}, meta.selector ?? 'all'),
    ' · maintenances ',
    h('b', {}, meta.namespace === null ? 'all namespaces' : `namespace ${meta.namespace}`),
  );
}

const SOURCE_TEXT = {
  nodes: 'Nodes',
  maintenances: 'NodeMaintenances',
  maintenanceEvents: 'Events on NodeMaintenances',
  nodeEvents: 'Events on Nodes',
};

/** What cannot be watched, and why (403: this user may not; 404: no CRD). */
export function renderTroubles(root, sources, warnings) {
  const items = [
    ...Object.entries(sources)
      .filter(([, s]) => s.state === 'trouble')
      .map(([name, s]) =>
        h('li', {}, h('b', {}, SOURCE_TEXT[name] ?? name), `: ${s.error ?? 'failed'} (retrying)`),
      ),
    ...warnings.map((w) => h('li', {}, w)),
  ];
  root.replaceChildren(...(items.length === 0 ? [] : [h('ul', {}, items)]));
  root.hidden = items.length === 0;
}
