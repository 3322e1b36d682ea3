// The live dashboard: a card per node, updated in place from the live stream.
import { METRICS, el, num, rate, time } from './format.js';
import { lineChart } from './charts.js';
import { alertBadge, alertsKey, byUrgency, watchAlerts } from './alerting.js';

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

/**
 * Renders the dashboard into `main`; returns a cleanup function.
 * The cards update in place at every snapshot (every live interval), so they are not a live
 * region: a screen reader would read the whole grid every few seconds. The summary is, and its
 * text changes only when a node goes down or comes back, naming the nodes that are down.
 */
export function livePage(main, store) {
  const grid = el('section', { class: 'grid', 'aria-label': 'nodes' });
  const summary = el('p', { class: 'summary', role: 'status', text: 'Loading…' });
  const say = (text) => {
    if (summary.textContent !== text) summary.textContent = text;
  };
  main.replaceChildren(el('h1', { text: 'Live' }), summary, grid);
  const cards = new Map();
  let alerts = [];

  function render(snap) {
    if (!snap) return;
    if (snap.nodes.length === 0) {
      say('No nodes configured: add [[nodes]] to the configuration.');
      return;
    }
    const up = snap.nodes.filter((n) => n.state === 'up').length;
    const down = snap.nodes.filter((n) => n.state === 'down').length;
    const firing = alerts.filter((a) => a.state === 'firing').length;
    say(`${up} up, ${down} down${downNames(snap.nodes)}, ${snap.nodes.length} nodes · every ${snap.interval_ms / 1000} s${firing ? ` · ${firing} alert${firing === 1 ? '' : 's'} firing` : ''}`);
    for (const n of snap.nodes) {
      let c = cards.get(n.name);
      if (!c) {
        c = nodeCard(n.name);
        cards.set(n.name, c);
        grid.append(c.card);
        c.setAlerts(alerts);
      }
      c.update(n, store.history.get(n.name));
    }
  }
  render(store.snapshot);
  const off = store.onSnapshot(render);
  let alertsShown = null;
  const offAlerts = watchAlerts((list) => {
    const key = alertsKey(list);
    if (key === alertsShown) return; // the usual poll: nothing changed, nothing redrawn
    alertsShown = key;
    alerts = list;
    for (const c of cards.values()) c.setAlerts(list);
    render(store.snapshot);
  });
  return () => {
    off();
    offAlerts();
    for (const c of cards.values()) c.destroy();
  };
}
