// The page: follows the server's event stream (a snapshot on connect, then patches) and draws
// the view. EventSource reconnects by itself; the server then sends a fresh snapshot.
/* global document, window, EventSource */
import { applyPatch } from './model.js';
import {
  renderLegend,
  renderMaintenances,
  renderMeta,
  renderNodeEvents,
  renderTiles,
  renderTroubles,
} from './render.js';

const $ = (id) => document.getElementById(id);
let view = null;

function draw(force = false) {
  if (view === null) return;
  const now = Date.now();
  renderMeta($('scope'), view.meta);
  renderTroubles($('troubles'), view.sources, view.warnings);
  renderLegend($('legend'), view.tiles);
  $('node-count').textContent = `(${view.tiles.length})`;
  renderTiles($('groups'), view.tiles);
  $('maint-count').textContent = `(${view.maintenances.length})`;
  renderMaintenances($('maintenances'), view.maintenances, now, force);
  renderNodeEvents($('node-events'), view.nodeEvents);
  const loading = Object.values(view.sources).some((s) => s.state === 'connecting');
  document.body.dataset.loading = String(loading);
}

function setConnection(state, text) {
  const el = $('conn');
  el.dataset.conn = state;
  el.textContent = text;
}

function connect() {
  const source = new EventSource('/events');
  source.addEventListener('open', () => setConnection('live', 'Live'));
  source.addEventListener('snapshot', (e) => {
    view = JSON.parse(e.data);
    draw();
    // For tests and the curious: when the page last drew a change from the server.
    window.nomaDashboard = { view, drawnAt: Date.now() };
  });
  source.addEventListener('patch', (e) => {
    if (view === null) return;
    view = applyPatch(view, JSON.parse(e.data));
    draw();
    window.nomaDashboard = { view, drawnAt: Date.now() };
  });
  source.addEventListener('error', () => {
    setConnection('lost', 'Disconnected: reconnecting…');
  });
}

connect();
// Durations of running maintenances move on without any change in the cluster.
window.setInterval(() => draw(true), 5000);
