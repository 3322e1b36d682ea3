// History: presets, a custom range, drag-to-zoom and reset; one chart per metric with a line per
// node (gaps where a node was down); availability per node. A tag narrows it to the nodes having
// it, and "one line" draws a group's average and peak (?tag=db&group=1, kept in the URL).
import * as api from './api.js';
import { navigate } from './nav.js';
import { lineChart, seriesColor } from './charts.js';
import { METRICS, dateTime, duration, el, stamp, time } from './format.js';
import { chartsOf, firingSpans } from './alerting.js';

export const PRESETS = { '1h': 3600, '24h': 86400, '7d': 7 * 86400, '30d': 30 * 86400, '1y': 365 * 86400 };

const iso = (unix) => new Date(unix * 1000).toISOString();
const localInput = (unix) => {
  const d = new Date(unix * 1000);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
};

/** The range a page's parameters ask for: { from, to, preset }. */
export function rangeOf(params) {
  const now = Math.floor(Date.now() / 1000);
  const from = Number(params.get('from'));
  const to = Number(params.get('to'));
  if (from > 0 && to > from) return { from, to, preset: null };
  const preset = PRESETS[params.get('range')] ? params.get('range') : '24h';
  return { from: now - PRESETS[preset], to: now, preset };
}

/**
 * The alert history of a range for the charts: { spans, metrics: rule -> metric } (Admins; the
 * rules' metrics say which chart a span belongs on). Empty when the alerts API is not there.
 */
export async function alertSpans(from, to, node) {
  try {
    const [events, config] = await Promise.all([
      api.alertHistory({ from: iso(from), to: iso(to), node, limit: 1000 }),
      api.alertConfig().catch(() => ({ rules: [] })),
    ]);
    const metrics = new Map((config.rules || []).map((r) => [r.name, r.metric]));
    const mine = (events.events || []).filter((e) => !node || e.node === node);
    return { spans: firingSpans(mine, from, to), metrics };
  } catch {
    return { spans: [], metrics: new Map() };
  }
}

/** The marks of `alerts` ({ spans, metrics }) for the chart of `metric`. */
function marksFor(alerts, metric) {
  if (!alerts) return [];
  return alerts.spans
    .filter((s) => chartsOf(alerts.metrics.get(s.rule)).includes(metric))
    .map((s) => ({
      ...s,
      label: `${s.rule} · ${s.node}`,
      title: `${s.rule} on ${s.node} (${s.severity}): fired ${time(s.from)}, ${s.resolved ? `resolved ${time(s.to)}` : 'still firing'}`,
    }));
}

/** The list under the charts that names every marked alert (the marks' legend, also for screen readers). */
function spansLegend(alerts) {
  if (!alerts || !alerts.spans.length) return null;
  return el(
    'section',
    { class: 'alert-marks panel', 'aria-label': 'alerts in this range' },
    el('h2', { text: `Alerts in this range (${alerts.spans.length})` }),
    el('ul', {}, alerts.spans.map((s) => el(
      'li',
      { class: `sev-${s.severity}`, 'data-rule': s.rule, 'data-node': s.node },
      el('span', { class: 'swatch', 'aria-hidden': 'true' }),
      el('strong', { text: s.rule }),
      ` on ${s.node} (${s.severity}): fired ${stamp(s.from)}, `,
      s.resolved ? `resolved ${time(s.to)}` : el('span', { class: 'still', text: 'still firing' }),
    ))),
  );
}

/**
 * Draws charts for `h` (an /api/history answer) into `box`.
 * opts: { which: 'avg' | 'avg+max', zoom(from, to), alerts: alertSpans() answer, within: [from, to] }
 */
export function drawCharts(box, h, opts) {
  const charts = [];
  const panels = METRICS.map((m) => {
    const names = [];
    const data = [h.t];
    const colors = [];
    const dashes = [];
    h.nodes.forEach((n, i) => {
      names.push(n.name + (n.retired ? ' (retired)' : ''));
      data.push(n.metrics[m.key].avg);
      colors.push(seriesColor(i));
      dashes.push(undefined);
      if (opts.which === 'avg+max') {
        names.push(`${n.name} max`);
        data.push(n.metrics[m.key].max);
        colors.push(seriesColor(i));
        dashes.push([4, 4]);
      }
    });
    const plot = el('div', { class: 'plot' });
    const panel = el('section', { class: 'panel', 'data-metric': m.key }, el('h2', { text: `${m.label} (${m.unit})` }), plot);
    return { panel, plot, data, names, colors, dashes, unit: m.unit, key: m.key };
  });
  box.replaceChildren(...panels.map((p) => p.panel), spansLegend(opts.alerts) || []);
  // Every chart covers the marked alerts (within the range asked for), so that they line up.
  let stretch;
  if (opts.alerts && opts.alerts.spans.length) {
    const [lo, hi] = opts.within || [-Infinity, Infinity];
    stretch = [
      Math.max(lo, Math.min(...opts.alerts.spans.map((s) => s.from))),
      Math.min(hi, Math.max(...opts.alerts.spans.map((s) => s.to))),
    ];
  }
  for (const p of panels) {
    charts.push(
      lineChart(p.plot, p.data, {
        names: p.names, colors: p.colors, dashes: p.dashes, unit: p.unit, height: 220,
        zoom: opts.zoom, range: p.unit === '%' ? [0, 100] : undefined,
        marks: marksFor(opts.alerts, p.key), stretch,
      }),
    );
  }
  return () => charts.forEach((c) => c.destroy());
}

export function historyPage(main, params) {
  let range = rangeOf(params);
  const tags = params.getAll('tag').filter(Boolean);
  const group = params.get('group') === '1';
  let destroyCharts = () => {};
  let request = 0;

  const presetButtons = Object.keys(PRESETS).map((p) =>
    el('button', { type: 'button', class: 'preset', 'data-range': p, text: p, onclick: () => go({ range: p }) }),
  );
  const fromInput = el('input', { type: 'datetime-local', 'aria-label': 'from' });
  const toInput = el('input', { type: 'datetime-local', 'aria-label': 'to' });
  const apply = el('button', {
    type: 'button', text: 'Apply',
    onclick: () => {
      const f = Math.floor(new Date(fromInput.value).getTime() / 1000);
      const t = Math.floor(new Date(toInput.value).getTime() / 1000);
      if (!(f > 0 && t > f)) {
        status.textContent = 'Choose a start before the end.';
        status.className = 'status-line error';
        return;
      }
      go({ from: f, to: t });
    },
  });
  const reset = el('button', { type: 'button', id: 'reset-zoom', text: 'Reset zoom', onclick: () => go({ range: '24h' }) });
  // The raw rows as CSV: a download in a browser; in the desktop app a save dialog.
  const csv = api.desktop
    ? el('button', { type: 'button', class: 'csv', id: 'save-csv', text: 'CSV…', title: 'Save the logged rows of this range as CSV' })
    : el('a', { class: 'csv', text: 'CSV', download: 'dsmon-history.csv' });
  const csvStatus = el('span', { class: 'csv-status muted', id: 'csv-status', role: 'status' });
  // The tags the nodes have (from the live view, which every mode has); hidden when none has any.
  const tagSelect = el('select', { id: 'history-tag', 'aria-label': 'Nodes with tag', hidden: true },
    el('option', { value: '', text: 'All nodes' }));
  tagSelect.addEventListener('change', () => go({ ...current(), tag: tagSelect.value ? [tagSelect.value] : [] }));
  const groupBox = el('input', { type: 'checkbox', id: 'history-group' });
  groupBox.checked = group;
  groupBox.addEventListener('change', () => go({ ...current(), group: groupBox.checked }));
  const groupLabel = el('label', { class: 'group-toggle', hidden: true }, groupBox, ' One line (average and peak)');
  api.live().then((snap) => {
    const all = [...new Set((snap.nodes || []).flatMap((n) => n.tags || []))].sort();
    for (const t of tags) if (!all.includes(t)) all.push(t);
    if (!all.length) return;
    tagSelect.append(...all.map((t) => el('option', { value: t, text: `Tag: ${t}` })));
    tagSelect.value = tags[0] || '';
    tagSelect.hidden = false;
    groupLabel.hidden = false;
  }).catch(() => {});
  const label = el('p', { class: 'range-label', id: 'range-label' });
  const status = el('p', { class: 'status-line', role: 'status', text: 'Loading…' });
  const charts = el('div', { class: 'charts' });
  const availability = el('table', { class: 'availability' });

  main.replaceChildren(
    el('h1', { text: 'History' }),
    el('div', { class: 'controls' },
      el('div', { class: 'presets', role: 'group', 'aria-label': 'range presets' }, presetButtons),
      el('div', { class: 'custom' }, fromInput, el('span', { text: '–' }), toInput, apply, reset, csv, csvStatus),
      el('div', { class: 'scope' }, tagSelect, groupLabel)),
    label,
    status,
    el('section', { class: 'availability-box' }, el('h2', { text: 'Availability' }), availability),
    charts,
  );

  /** The range shown now, as go() takes it. */
  function current() {
    return range.preset ? { range: range.preset } : { from: range.from, to: range.to };
  }

  function go(p) {
    const q = new URLSearchParams();
    if (p.range) q.set('range', p.range);
    else {
      q.set('from', p.from);
      q.set('to', p.to);
    }
    for (const t of p.tag || tags) q.append('tag', t);
    if (p.group ?? group) q.set('group', '1');
    api.setPref('last_range', q.toString()).catch(() => {});
    navigate(`/history?${q}`);
  }

  async function load() {
    const mine = ++request;
    for (const b of presetButtons) b.classList.toggle('active', b.dataset.range === range.preset);
    reset.hidden = range.preset !== null;
    fromInput.value = localInput(range.from);
    toInput.value = localInput(range.to);
    const p = { from: iso(range.from), to: iso(range.to), points: 500, tag: tags, group: group ? '1' : undefined };
    if (api.desktop) {
      csv.onclick = () => saveCsv(p);
    } else {
      csv.href = api.historyCsvUrl(p);
    }
    label.textContent = `${dateTime(range.from)} – ${dateTime(range.to)}`;
    status.textContent = 'Loading…';
    status.className = 'status-line loading';
    charts.classList.add('busy');
    let h;
    let alerts;
    try {
      [h, alerts] = await Promise.all([api.history(p), alertSpans(range.from, range.to)]);
    } catch (e) {
      if (mine !== request) return;
      status.textContent = `Could not load history: ${e.message}`;
      status.className = 'status-line error';
      charts.classList.remove('busy');
      return;
    }
    if (mine !== request) return;
    charts.classList.remove('busy');
    const logged = h.nodes.some((n) => n.availability !== null);
    status.className = 'status-line';
    status.textContent = logged
      ? `${h.t.length} points of ${duration(h.step)} (${h.tier === 'raw' ? 'logged rows' : h.tier.replace('rollup_', '') + ' roll-ups'}) · drag across a chart to zoom`
      : 'Nothing was logged in this range.';
    availability.replaceChildren(
      el('thead', {}, el('tr', {}, el('th', { text: 'Node' }), el('th', { text: 'Availability' }))),
      el('tbody', {}, h.nodes.map((n) => el('tr', { 'data-node': n.name },
        el('td', {}, h.group
          ? el('span', { text: `${n.name} (${h.group.nodes.length} nodes)`, title: h.group.nodes.join(', ') })
          : el('a', { href: `/nodes/${encodeURIComponent(n.name)}`, text: n.name }), n.retired ? el('span', { class: 'retired muted', text: 'retired' }) : null),
        el('td', { class: 'num', text: n.availability === null ? 'no data' : `${(n.availability * 100).toFixed(1)} %` })))),
    );
    destroyCharts();
    destroyCharts = drawCharts(charts, h, {
      which: group ? 'avg+max' : 'avg', zoom: (f, t) => go({ from: f, to: t }), alerts, within: [range.from, range.to],
    });
  }

  async function saveCsv(p) {
    csv.disabled = true;
    csvStatus.className = 'csv-status muted';
    csvStatus.textContent = '';
    try {
      const path = await api.saveHistoryCsv(p);
      if (path) csvStatus.textContent = `Saved ${path}`;
    } catch (e) {
      csvStatus.className = 'csv-status error';
      csvStatus.textContent = `Could not save the CSV: ${e.message}`;
    } finally {
      csv.disabled = false;
    }
  }

  load();
  return () => {
    request++;
    destroyCharts();
  };
}
