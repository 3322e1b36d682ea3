// The live dashboard: a card per node, updated in place from the live stream.
import { METRICS, el, num, rate, time } from './format.js';
import { lineChart } from './charts.js';
import { alertBadge, alertsKey, byUrgency, watchAlerts } from './alerting.js';
import { SORT_KEYS, firstDir, nodeTable } from './table.js';

const SPARK_SECONDS = 300;

/**
 * A node's card; `update(node, history)` refreshes it without rebuilding it, `setAlerts(alerts)`
 * shows the node's pending and firing alerts (redrawn only when they change).
 */
export function nodeCard(name, { big = false } = {}) {
  const badge = el('span', { class: 'badge', text: 'pending' });
  const alertList = el('ul', { class: 'alerts', 'aria-label': `alerts on ${name}`, hidden: true });
  let shownAlerts = '';
  const values = {};
  const tiles = METRICS.map((m) => {
    values[m.key] = el('dd', { text: '–' });
    return el('div', { class: 'tile' }, el('dt', { class: 'muted', text: m.label }), values[m.key]);
  });
  // The big card (the node page) shows its chart only once there is one to draw: no empty box for
  // a node that is pending or down.
  const spark = el('div', { class: 'spark', hidden: big });
  const status = el('p', { class: 'status', text: 'waiting for the first poll…' });
  const card = el(
    'article',
    { class: `card state-pending${big ? ' big' : ''}`, 'data-node': name },
    el('header', {}, el('a', { class: 'name', href: `/nodes/${encodeURIComponent(name)}`, text: name }), badge),
    alertList,
    el('dl', { class: 'values' }, tiles),
    spark,
    status,
  );
  let chart = null;

  function update(node, hist) {
    card.className = `card state-${node.state}${big ? ' big' : ''}${card.classList.contains('alerting') ? ' alerting' : ''}`;
    badge.textContent = node.state;
    const m = node.metrics;
    for (const def of METRICS) {
      const v = m ? m[def.key] : null;
      values[def.key].textContent = def.unit === '%' ? (v === null ? '–' : `${num(v)} %`) : rate(v);
    }
    if (node.state === 'down') {
      const since = node.since ? `down since ${time(node.since)}` : 'down';
      status.textContent = `${since}: ${node.last_error || 'no answer'}`;
    } else if (node.state === 'up') {
      status.textContent = `updated ${time(node.last_seen)}`;
    }
    const valued = (xs) => xs.some((v) => v !== null && v !== undefined);
    if (hist && hist.t.length > 1 && (!big || chart || valued(hist.cpu) || valued(hist.mem))) {
      const data = [hist.t, hist.cpu, hist.mem];
      if (!chart) {
        spark.hidden = false;
        chart = lineChart(spark, data, {
          names: ['CPU %', 'Memory %'], unit: '%', height: big ? 180 : 70, compact: !big, live: true, range: [0, 100],
        });
      } else {
        chart.setData(data);
      }
    }
  }
  function setAlerts(all) {
    const mine = all.filter((a) => a.node === name).sort(byUrgency);
    const key = alertsKey(mine);
    if (key === shownAlerts) return;
    shownAlerts = key;
    alertList.replaceChildren(...mine.map(alertBadge));
    alertList.hidden = mine.length === 0;
    card.classList.toggle('alerting', mine.some((a) => a.state === 'firing'));
  }
  return { card, update, setAlerts, destroy: () => chart && chart.destroy() };
}

/** Keeps the last few minutes of every node's values for the rolling charts. */
export class LiveHistory {
  constructor() {
    this.byNode = new Map();
  }

  add(snapshot) {
    for (const n of snapshot.nodes) {
      let h = this.byNode.get(n.name);
      if (!h) {
        h = { t: [], cpu: [], mem: [] };
        this.byNode.set(n.name, h);
      }
      h.t.push(snapshot.ts);
      h.cpu.push(n.metrics ? n.metrics.cpu_pct : null);
      h.mem.push(n.metrics ? n.metrics.mem_pct : null);
      while (h.t.length && h.t[0] < snapshot.ts - SPARK_SECONDS) {
        h.t.shift();
        h.cpu.shift();
        h.mem.shift();
      }
    }
  }

  get(name) {
    return this.byNode.get(name);
  }
}

/** " (a, b and 3 more)": the nodes that are down, for the summary; "" when none is. */
function downNames(nodes) {
  const names = nodes.filter((n) => n.state === 'down').map((n) => n.name);
  if (names.length === 0) return '';
  const shown = names.slice(0, 5).join(', ');
  return ` (${shown}${names.length > 5 ? ` and ${names.length - 5} more` : ''})`;
}

/** Above this many nodes the page opens on the table, unless the URL or a saved choice says. */
export const CARDS_UP_TO = 20;
const VIEW_KEY = 'dsmon.live.view';
const STATES = ['up', 'down', 'pending', 'firing'];

/**
 * What the page shows, from its URL: view (cards | table; null: not said), sort column and
 * direction, text filter, state filter (up | down | pending | firing), tags (all required).
 */
export function viewOf(params) {
  const view = ['cards', 'table'].includes(params.get('view')) ? params.get('view') : null;
  const key = SORT_KEYS.has(params.get('sort')) ? params.get('sort') : 'state';
  const dir = ['asc', 'desc'].includes(params.get('dir')) ? params.get('dir') : (params.get('sort') ? firstDir(key) : 'asc');
  const state = STATES.includes(params.get('state')) ? params.get('state') : null;
  return { view, sort: { key, dir }, q: params.get('q') || '', state, tags: params.getAll('tag').filter(Boolean) };
}

/** The query string of a view (defaults left out). */
export function queryOf(v) {
  const p = new URLSearchParams();
  if (v.view) p.set('view', v.view);
  if (v.sort.key !== 'state' || v.sort.dir !== 'asc') {
    p.set('sort', v.sort.key);
    p.set('dir', v.sort.dir);
  }
  if (v.q) p.set('q', v.q);
  if (v.state) p.set('state', v.state);
  for (const t of v.tags) p.append('tag', t);
  const q = p.toString();
  return q ? `?${q}` : '';
}

function savedView() {
  try {
    return localStorage.getItem(VIEW_KEY);
  } catch {
    return null; // storage refused (a locked-down browser): the default then
  }
}

/**
 * Renders the dashboard into `main`; returns a cleanup function.
 * The cards and the table update in place at every snapshot (every live interval), so they are
 * not a live region: a screen reader would read the whole grid every few seconds. The summary is,
 * and its text changes only when a node goes down or comes back, naming the nodes that are down.
 * The summary bar's counts are buttons that filter by state; the text, state and tag filters, the
 * view and the table's sort are kept in the URL's query (replaced, not pushed, as they change).
 * The desktop app's compact window (`compact`) shows the cards only, without the bar.
 */
export function livePage(main, store, params = new URLSearchParams(), { compact = false } = {}) {
  const v = viewOf(params);
  const grid = el('section', { class: 'grid', 'aria-label': 'nodes' });
  const summary = el('p', { class: 'summary', role: 'status', text: 'Loading…' });
  const say = (text) => {
    if (summary.textContent !== text) summary.textContent = text;
  };
  const counts = {};
  const stateButtons = [['', 'all'], ['up', 'up'], ['down', 'down'], ['pending', 'pending'], ['firing', 'firing alerts']].map(([state, label]) => {
    const count = el('strong', { text: '0' });
    counts[state] = count;
    const b = el('button', { type: 'button', class: `count state-${state || 'all'}`, 'data-state': state || 'all' }, count, ` ${label}`);
    b.addEventListener('click', () => {
      v.state = v.state === state || !state ? null : state;
      changed();
    });
    return b;
  });
  const search = el('input', { type: 'search', id: 'live-filter', placeholder: 'Filter by name or error', 'aria-label': 'Filter nodes by name or error', value: v.q });
  search.addEventListener('input', () => {
    v.q = search.value.trim();
    changed();
  });
  const tagSelect = el('select', { id: 'tag-filter', 'aria-label': 'Filter by tag', hidden: true });
  tagSelect.addEventListener('change', () => {
    v.tags = tagSelect.value ? [tagSelect.value] : [];
    changed();
  });
  const viewButtons = ['cards', 'table'].map((name) => {
    const b = el('button', { type: 'button', class: 'view', 'data-view': name, text: name === 'cards' ? 'Cards' : 'Table' });
    b.addEventListener('click', () => {
      try {
        localStorage.setItem(VIEW_KEY, name);
      } catch {
        // not remembered; the URL still says it
      }
      v.view = name;
      changed();
    });
    return b;
  });
  const shownNote = el('p', { class: 'shown muted', id: 'shown-note' });
  const bar = el('div', { class: 'live-bar' },
    el('div', { class: 'summary-bar', role: 'group', 'aria-label': 'filter by state' }, stateButtons),
    el('div', { class: 'live-filters' }, search, tagSelect),
    el('div', { class: 'view-switch', role: 'group', 'aria-label': 'view', hidden: compact }, viewButtons));
  const table = nodeTable({
    onSort: (key) => {
      v.sort = v.sort.key === key ? { key, dir: v.sort.dir === 'asc' ? 'desc' : 'asc' } : { key, dir: firstDir(key) };
      changed();
    },
  });
  main.replaceChildren(el('h1', { text: 'Live' }), summary, bar, shownNote, grid, table.element);
  const cards = new Map();
  let alerts = [];
  let firing = new Set();
  let shownTags = '';
  /** The view in use: the URL's, else the saved choice, else by the number of nodes. */
  let view = compact ? 'cards' : savedView();
  if (view !== 'cards' && view !== 'table') view = null;
  const viewNow = () => (compact ? 'cards' : v.view || view || 'cards');

  // The figures of the last updates (milliseconds), for the browser test and anyone curious:
  // render (the handler's script), layout (script + style + layout, forced at its end), frame
  // (until the frame after it: paint and any wait for the display's next frame included).
  const perf = (window.dsmonLivePerf = window.dsmonLivePerf || { updates: [] });

  function matches(n) {
    if (v.state === 'firing' ? !firing.has(n.name) : v.state && n.state !== v.state) return false;
    if (v.tags.length && !v.tags.every((t) => n.tags && n.tags.includes(t))) return false;
    if (v.q) {
      const q = v.q.toLowerCase();
      const hay = `${n.name} ${n.last_error || ''} ${(n.tags || []).join(' ')}`.toLowerCase();
      if (!hay.includes(q)) return false;
    }
    return true;
  }

  /** Applies the view's settings to the page and the URL (after any change of them). */
  function changed() {
    history.replaceState(null, '', `${location.pathname}${queryOf(v)}`);
    const snap = store.snapshot;
    if (!view && snap && snap.nodes.length) view = snap.nodes.length > CARDS_UP_TO ? 'table' : 'cards';
    const current = viewNow();
    for (const b of viewButtons) b.setAttribute('aria-pressed', String(b.dataset.view === current));
    for (const b of stateButtons) b.setAttribute('aria-pressed', String((b.dataset.state === 'all' ? null : b.dataset.state) === v.state));
    if (search.value.trim() !== v.q) search.value = v.q;
    table.element.hidden = current !== 'table';
    grid.hidden = current !== 'cards';
    render(snap, true);
  }

  function render(snap, settled = false) {
    if (!snap) return;
    const t0 = performance.now();
    if (snap.nodes.length === 0) {
      say('No nodes configured: add [[nodes]] to the configuration.');
      return;
    }
    if (!settled && !v.view && !view) {
      changed(); // the first snapshot decides the view
      return;
    }
    const current = viewNow();
    let up = 0;
    let down = 0;
    let pending = 0;
    for (const n of snap.nodes) {
      if (n.state === 'up') up++;
      else if (n.state === 'down') down++;
      else pending++;
    }
    const nFiring = alerts.filter((a) => a.state === 'firing').length;
    say(`${up} up, ${down} down${downNames(snap.nodes)}, ${snap.nodes.length} nodes · every ${snap.interval_ms / 1000} s${nFiring ? ` · ${nFiring} alert${nFiring === 1 ? '' : 's'} firing` : ''}`);
    for (const [state, n] of [['', snap.nodes.length], ['up', up], ['down', down], ['pending', pending], ['firing', nFiring]]) {
      const text = String(n);
      if (counts[state].textContent !== text) counts[state].textContent = text;
    }
    const tags = [...new Set(snap.nodes.flatMap((n) => n.tags || []))].sort();
    const tagsKey = tags.join('\n');
    if (tagsKey !== shownTags || !tagSelect.options.length) {
      // No node has tags (or the server predates them): no tag filter is offered.
      shownTags = tagsKey;
      const chosen = v.tags[0] || '';
      tagSelect.replaceChildren(el('option', { value: '', text: 'any tag' }),
        ...[...new Set([...tags, ...v.tags])].sort().map((t) => el('option', { value: t, text: t })));
      tagSelect.value = chosen;
      tagSelect.hidden = tags.length === 0 && v.tags.length === 0;
    }
    let shown = 0;
    if (current === 'table') {
      table.update(snap, firing);
      table.show(matches, v.sort);
      shown = table.shown();
    } else {
      // A card is made when its node is first shown, and updated only while shown.
      let made = false;
      for (const n of snap.nodes) {
        let c = cards.get(n.name);
        const hide = !matches(n);
        if (hide) {
          if (c && !c.card.hidden) c.card.hidden = true;
          continue;
        }
        if (!c) {
          c = nodeCard(n.name);
          cards.set(n.name, c);
          c.setAlerts(alerts);
          made = true;
        }
        if (c.card.hidden) c.card.hidden = false;
        shown++;
        c.update(n, store.history.get(n.name));
      }
      // New cards go where their node is in the configuration's order.
      if (made) grid.append(...snap.nodes.map((n) => cards.get(n.name)).filter(Boolean).map((c) => c.card));
    }
    const note = shown === snap.nodes.length ? '' : `Showing ${shown} of ${snap.nodes.length} nodes.`;
    if (shownNote.textContent !== note) shownNote.textContent = note;
    const t1 = performance.now();
    if (document.hidden) return;
    void (current === 'table' ? table.table : grid).offsetHeight; // style and layout now, measured
    const t2 = performance.now();
    const entry = { render: t1 - t0, layout: t2 - t0, frame: null, view: current, nodes: snap.nodes.length, ...(current === 'table' ? table.stats() : {}) };
    perf.updates.push(entry);
    if (perf.updates.length > 200) perf.updates.shift();
    requestAnimationFrame(() => {
      const ch = new MessageChannel();
      ch.port1.onmessage = () => {
        entry.frame = performance.now() - t0;
      };
      ch.port2.postMessage(null);
    });
  }
  changed();
  const off = store.onSnapshot((s) => render(s));
  let alertsShown = null;
  const offAlerts = watchAlerts((list) => {
    const key = alertsKey(list);
    if (key === alertsShown) return; // the usual poll: nothing changed, nothing redrawn
    alertsShown = key;
    alerts = list;
    firing = new Set(list.filter((a) => a.state === 'firing').map((a) => a.node));
    for (const c of cards.values()) c.setAlerts(list);
    render(store.snapshot);
  });
  return () => {
    off();
    offAlerts();
    for (const c of cards.values()) c.destroy();
  };
}
