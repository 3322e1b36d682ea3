// One node: its live card, a link to its own Netdata dashboard, its alerts, then (for Admins) its
// last 24 hours: lowest, average and highest of every metric, and the charts (average and peak).
import * as api from './api.js';
import { nodeCard } from './live.js';
import { alertSpans, drawCharts } from './history.js';
import { alertsKey, alertsTable, watchAlerts } from './alerting.js';
import { METRICS, el, num, rate } from './format.js';

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
        el('th', { scope: 'row', text: m.label }),
        ...(s ? [s.min, s.avg, s.max].map((v) => el('td', { class: 'num', text: fmt(m, v) }))
          : [el('td', { class: 'num muted', colspan: 3, text: 'no data' })]));
    })),
  );
}

export function nodePage(main, store, name) {
  const { card, update, setAlerts, destroy } = nodeCard(name, { big: true });
  const status = el('p', { class: 'status-line loading', role: 'status', text: 'Loading the last 24 hours…' });
  const summaryBox = el('div', { class: 'summary-box' });
  const charts = el('div', { class: 'charts' });
  const dashboard = el('p', { class: 'dashboard-link', hidden: true });
  // History is for Admins (the backend refuses it to Users); a User sees the live card, the link
  // and the alerts.
  const withHistory = !store.me || store.me.role === 'admin';
  const alertsBox = el('section', { class: 'node-alerts', 'aria-labelledby': 'node-alerts-h' },
    el('h2', { id: 'node-alerts-h', text: 'Alerts' }),
    el('p', { class: 'muted', text: 'Loading alerts…' }));
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
  let alertsShown = null;
  const offAlerts = watchAlerts((all) => {
    const mine = all.filter((a) => a.node === name);
    setAlerts(all);
    const key = alertsKey(mine);
    if (key === alertsShown) return;
    alertsShown = key;
    alertsBox.replaceChildren(alertsBox.firstChild, mine.length
      ? alertsTable(mine, { node: false })
      : el('p', { class: 'muted empty', text: 'No alerts on this node.' }));
  });
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
  const now = Math.floor(Date.now() / 1000);
  // As many points as the day has logged rows (5000 at most), so that the lowest value is a row's.
  if (withHistory) Promise.all([
    api.history({ from: new Date((now - 86400) * 1000).toISOString(), to: new Date(now * 1000).toISOString(), points: 5000, node: [name] }),
    alertSpans(now - 86400, now, name),
  ])
    .then(([h, alerts]) => {
      if (!alive) return;
      const n = h.nodes[0];
      status.className = 'status-line';
      if (!n || n.availability === null) {
        status.textContent = 'Nothing was logged for this node in the last 24 hours yet: its first row comes at the next tick.';
        return;
      }
      const valued = METRICS.some((m) => summary(n, m.key));
      const available = `Available ${(n.availability * 100).toFixed(1)} % of the time it was monitored`;
      status.textContent = valued ? `${available} · charts: solid average, dashed peak` : `${available}: no values logged, so no charts`;
      summaryBox.replaceChildren(summaryTable(h));
      if (valued) destroyCharts = drawCharts(charts, h, { which: 'avg+max', alerts, within: [now - 86400, now] });
    })
    .catch((e) => {
      if (!alive) return;
      status.className = 'status-line error';
      status.textContent = `Could not load history: ${e.message}`;
    });
  return () => {
    alive = false;
    off();
    offAlerts();
    destroy();
    destroyCharts();
  };
}
