// One node: its live card, then (for Admins) its last 24 hours (average and peak of every metric).
import * as api from './api.js';
import { nodeCard } from './live.js';
import { alertSpans, drawCharts } from './history.js';
import { alertsKey, alertsTable, watchAlerts } from './alerting.js';
import { el } from './format.js';

export function nodePage(main, store, name) {
  const { card, update, setAlerts, destroy } = nodeCard(name, { big: true });
  const status = el('p', { class: 'status-line loading', role: 'status', text: 'Loading the last 24 hours…' });
  const charts = el('div', { class: 'charts' });
  // History is for Admins (the backend refuses it to Users); a User sees the live card only.
  const withHistory = !store.me || store.me.role === 'admin';
  const alertsBox = el('section', { class: 'node-alerts', 'aria-labelledby': 'node-alerts-h' },
    el('h2', { id: 'node-alerts-h', text: 'Alerts' }),
    el('p', { class: 'muted', text: 'Loading alerts…' }));
  main.replaceChildren(
    el('p', { class: 'crumbs muted' }, el('a', { href: '/live', text: 'Live' }), ' / ', name),
    el('h1', { text: name }),
    card,
    alertsBox,
    ...(withHistory ? [el('h2', { text: 'Last 24 hours' }), status, charts] : []),
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
  const now = Math.floor(Date.now() / 1000);
  if (withHistory) Promise.all([
    api.history({ from: new Date((now - 86400) * 1000).toISOString(), to: new Date(now * 1000).toISOString(), points: 288, node: [name] }),
    alertSpans(now - 86400, now, name),
  ])
    .then(([h, alerts]) => {
      if (!alive) return;
      const logged = h.nodes[0] && h.nodes[0].availability !== null;
      status.className = 'status-line';
      status.textContent = logged ? 'Solid: average · dashed: peak' : 'Nothing was logged for this node in the last 24 hours.';
      destroyCharts = drawCharts(charts, h, { which: 'avg+max', alerts, within: [now - 86400, now] });
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
