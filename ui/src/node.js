// One node: its live card, a link to its own Netdata dashboard, its alerts, then (for Admins) its
// last 24 hours: lowest, average and highest of every metric, and the charts (average and peak).
import * as api from './api.js';
import { nodeCard } from './live.js';
import { drawCharts } from './history.js';
import { METRICS, dateTime, el, num, rate } from './format.js';

/** Lowest, average and highest of a metric over the buckets of an /api/history node. */
export function summary(node, key) {
  const s = node.metrics[key];
  const avgs = s.avg.filter((v) => v !== null && v !== undefined);
  const maxs = s.max.filter((v) => v !== null && v !== undefined);
  if (!avgs.length) return null;
  return {
    min: Math.min(...avgs),
    avg: avgs.reduce((a, b) => a + b, 0) / avgs.length,
    max: maxs.length ? Math.max(...maxs) : Math.max(...avgs),
  };
}

function summaryTable(h) {
  const n = h.nodes[0];
  const fmt = (m, v) => (m.unit === '%' ? `${num(v)} %` : rate(v));
  return el('table', { class: 'summary' },
    el('thead', {}, el('tr', {}, ['Metric', 'Lowest', 'Average', 'Highest'].map((t) => el('th', { text: t })))),
    el('tbody', {}, METRICS.map((m) => {
      const s = summary(n, m.key);
      return el('tr', { 'data-metric': m.key },
        el('th', { scope: 'row', text: `${m.label}` }),
        ...(s ? [s.min, s.avg, s.max].map((v) => el('td', { class: 'num', text: fmt(m, v) }))
          : [el('td', { class: 'num muted', colspan: 3, text: 'no data' })]));
    })),
  );
}

function alertsList(mine) {
  if (!mine.length) return el('p', { class: 'muted empty', text: 'No alerts on this node.' });
  return el('table', { class: 'alerts' },
    el('thead', {}, el('tr', {}, ['Rule', 'State', 'Severity', 'Value', 'Since'].map((t) => el('th', { text: t })))),
    el('tbody', {}, mine.map((a) => el('tr', { 'data-rule': a.rule },
      el('td', { text: a.rule }),
      el('td', { text: a.state }),
      el('td', { text: a.severity || '' }),
      el('td', { class: 'num', text: a.value === null || a.value === undefined ? '–' : num(a.value) }),
      el('td', { text: a.since ? dateTime(Date.parse(a.since) / 1000) : '' })))),
  );
}

export function nodePage(main, store, name) {
  const { card, update, destroy } = nodeCard(name, { big: true });
  const status = el('p', { class: 'status-line loading', role: 'status', text: 'Loading the last 24 hours…' });
  const summaryBox = el('div', { class: 'summary-box' });
  const charts = el('div', { class: 'charts' });
  const dashboard = el('p', { class: 'dashboard-link', hidden: true });
  const alertsBox = el('section', { class: 'node-alerts', 'aria-labelledby': 'node-alerts-h' },
    el('h2', { id: 'node-alerts-h', text: 'Alerts' }),
    el('p', { class: 'muted', text: 'Loading alerts…' }));
  // History is for Admins (the backend refuses it to Users); a User sees the live card, the link
  // and the alerts.
  const withHistory = !store.me || store.me.role === 'admin';
  main.replaceChildren(
    el('p', { class: 'crumbs muted' }, el('a', { href: '/live', text: 'Live' }), ' / ', name),
    el('h1', { text: name }),
    card,
    dashboard,
    alertsBox,
    ...(withHistory ? [el('h2', { text: 'Last 24 hours' }), status, summaryBox, charts] : []),
  );
  function render(snap) {
    const n = snap && snap.nodes.find((x) => x.name === name);
    if (n) update(n, store.history.get(name));
    else if (snap) card.querySelector('.status').textContent = 'Not a configured node (it may be retired): only its history is shown.';
  }
  render(store.snapshot);
  const off = store.onSnapshot(render);
  let destroyCharts = () => {};
  let alive = true;
  api.nodes()
    .then((all) => {
      const n = alive && all.find((x) => x.name === name);
      if (!n || !n.dashboard) return;
      dashboard.replaceChildren(
        el('a', { href: n.dashboard, target: '_blank', rel: 'noopener noreferrer', text: 'Open its Netdata dashboard' }),
        el('span', { class: 'muted', text: ` (${n.dashboard}; the agent decides whom it answers)` }));
      dashboard.hidden = false;
    })
    .catch(() => {});
  api.alerts()
    .then((a) => {
      if (!alive) return;
      alertsBox.replaceChildren(alertsBox.firstChild, alertsList((a.alerts || []).filter((x) => x.node === name)));
    })
    .catch((e) => {
      if (!alive) return;
      alertsBox.replaceChildren(alertsBox.firstChild, el('p', { class: 'muted', text: `Alerts are not available: ${e.message}` }));
    });
  const now = Math.floor(Date.now() / 1000);
  // As many points as the day has logged rows (5000 at most), so that the lowest value is a row's.
  if (withHistory) api
    .history({ from: new Date((now - 86400) * 1000).toISOString(), to: new Date(now * 1000).toISOString(), points: 5000, node: [name] })
    .then((h) => {
      if (!alive) return;
      const n = h.nodes[0];
      const logged = n && n.availability !== null;
      status.className = 'status-line';
      if (!logged) {
        status.textContent = 'Nothing was logged for this node in the last 24 hours yet: its first row comes at the next tick.';
        return;
      }
      const valued = METRICS.some((m) => summary(n, m.key));
      const available = `Available ${(n.availability * 100).toFixed(1)} % of the time it was monitored`;
      status.textContent = valued ? `${available} · charts: solid average, dashed peak` : `${available}: no values logged, so no charts`;
      summaryBox.replaceChildren(summaryTable(h));
      if (valued) destroyCharts = drawCharts(charts, h, { which: 'avg+max' });
    })
    .catch((e) => {
      if (!alive) return;
      status.className = 'status-line error';
      status.textContent = `Could not load history: ${e.message}`;
    });
  return () => {
    alive = false;
    off();
    destroy();
    destroyCharts();
  };
}
