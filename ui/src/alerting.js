// What the pages share about alerts: the current alerts (GET /api/alerts, polled while a page that
// shows them is open, one request for all of them), how an alert looks (a badge, a value), and the
// firing spans of the alert history that the history charts mark.
import * as api from './api.js';
import { METRICS, el, num, rate, stamp } from './format.js';

const POLL_MS = 3000;

const listeners = new Set();
let latest = null;
let timer = null;
let busy = false;

async function poll() {
  // A hidden tab asks nothing; it catches up when shown (visibilitychange below).
  if (busy || document.hidden) return;
  busy = true;
  try {
    const answer = await api.alerts();
    latest = answer.alerts || [];
    for (const f of listeners) f(latest);
  } catch {
    // Alerts are an addition to the live view: a failed poll leaves the last known marks.
  } finally {
    busy = false;
  }
}

document.addEventListener('visibilitychange', () => {
  if (!document.hidden && timer) poll();
});

/**
 * Calls f(alerts) with the current alerts now (if known) and at every change seen by the poll,
 * which runs while anyone watches. Returns a function that stops watching.
 */
export function watchAlerts(f) {
  listeners.add(f);
  if (latest) f(latest);
  if (!timer) {
    poll();
    timer = setInterval(poll, POLL_MS);
  }
  return () => {
    listeners.delete(f);
    if (listeners.size === 0 && timer) {
      clearInterval(timer);
      timer = null;
    }
  };
}

/** Asks again now (after an acknowledgement or a silence changed what the marks say). */
export const refreshAlerts = () => poll();

/** Unix seconds of an RFC 3339 time or of Unix seconds; null for none. */
export function unix(t) {
  if (t === null || t === undefined || t === '') return null;
  if (typeof t === 'number') return t;
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? null : Math.floor(ms / 1000);
}

/** `5h 12m` for seconds (as the notifications say it). */
export function humanSecs(secs) {
  if (secs === null || secs === undefined) return '–';
  const s = Math.max(0, Math.round(secs));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d) return h ? `${d}d ${h}h` : `${d}d`;
  if (h) return m ? `${h}h ${m}m` : `${h}h`;
  if (m) return `${m}m`;
  return `${s}s`;
}

/** A metric's value as the live cards show it: `93.2 %`, `1.20 Mbit/s`, `5h 12m` until full. */
export function metricValue(metric, v) {
  if (metric === 'down' || metric === 'stale') return metric;
  if (v === null || v === undefined) return '–';
  if (metric === 'disk_full_in') return humanSecs(v);
  const def = METRICS.find((m) => m.key === metric);
  if (!def) return num(v);
  return def.unit === '%' ? `${num(v)} %` : rate(v);
}

/** The threshold in the metric's unit: `90 %`, `24h`; '' for down/stale. */
export function thresholdText(metric, t) {
  if (metric === 'down' || metric === 'stale' || t === null || t === undefined) return '';
  if (metric === 'disk_full_in') return humanSecs(t);
  const def = METRICS.find((m) => m.key === metric);
  return def && def.unit === '%' ? `${num(t, 0)} %` : def ? rate(t) : String(t);
}

/** One alert on a live card: the rule's name in its severity's colour; pending is drawn quietly. */
export function alertBadge(a) {
  const marks = [];
  if (a.silenced) marks.push('silenced');
  if (a.acknowledged) marks.push('acknowledged');
  const value = metricValue(a.metric, a.value);
  const title = `${a.severity} · ${a.rule} ${a.state}${a.metric ? ` · ${a.metric} ${value}` : ''}${marks.length ? ` · ${marks.join(', ')}` : ''}`;
  return el(
    'li',
    {
      class: `alert-badge sev-${a.severity} ${a.state}${a.silenced ? ' silenced' : ''}`,
      'data-rule': a.rule,
      'data-state': a.state,
      title,
    },
    el('span', { class: 'sev', text: a.state === 'pending' ? 'pending' : a.severity }),
    ' ',
    el('span', { class: 'rule', text: a.rule }),
    marks.length ? el('span', { class: 'marks', text: ` · ${marks.join(', ')}` }) : null,
  );
}

/** Firing alerts before pending ones, critical before warning, then by rule. */
export function byUrgency(a, b) {
  const rank = (x) => (x.state === 'firing' ? 0 : 2) + (x.severity === 'critical' ? 0 : 1);
  return rank(a) - rank(b) || a.rule.localeCompare(b.rule) || a.node.localeCompare(b.node);
}

/** A string that changes when anything a badge shows does. */
export const alertsKey = (list) =>
  list.map((a) => `${a.rule}|${a.node}|${a.state}|${a.severity}|${a.silenced}|${a.acknowledged ? 1 : 0}`).join('\n');

/**
 * The times alerts fired, from events (any order): one span per firing, { rule, node, severity,
 * from, to, resolved }. A span that resolves after a firing before `rangeFrom` starts there; one
 * still firing ends at `rangeTo`.
 */
export function firingSpans(events, rangeFrom, rangeTo) {
  const sorted = [...events].sort((a, b) => unix(a.at) - unix(b.at) || String(a.id).localeCompare(String(b.id)));
  const open = new Map();
  const spans = [];
  for (const e of sorted) {
    const key = `${e.rule}\n${e.node}`;
    const at = unix(e.at);
    if (e.state === 'firing') {
      if (!open.has(key)) open.set(key, { rule: e.rule, node: e.node, severity: e.severity, from: at, to: null, resolved: false });
    } else if (e.state === 'resolved') {
      const s = open.get(key) || { rule: e.rule, node: e.node, severity: e.severity, from: rangeFrom };
      open.delete(key);
      spans.push({ ...s, to: at, resolved: true });
    }
  }
  for (const s of open.values()) spans.push({ ...s, to: rangeTo, resolved: false });
  return spans.sort((a, b) => a.from - b.from);
}

/**
 * Which history chart (a METRICS key) shows a rule's spans: its own metric's; a disk forecast on
 * the disk chart; a down or stale node (or a rule not known) on every chart.
 */
export function chartsOf(metric) {
  if (metric === 'disk_full_in') return ['disk_pct'];
  if (METRICS.some((m) => m.key === metric)) return [metric];
  return METRICS.map((m) => m.key);
}

/**
 * A table of alerts (Alert objects): severity, rule, node (unless opts.node is false), state,
 * value, since, acknowledged/silenced; with opts.onAck(alert, button), an Acknowledge button on
 * every firing alert not acknowledged yet.
 */
export function alertsTable(list, opts = {}) {
  const withNode = opts.node !== false;
  const heads = ['Severity', 'Rule', ...(withNode ? ['Node'] : []), 'State', 'Value', 'Since', 'Marks', ...(opts.onAck ? ['Action'] : [])];
  const rows = [...list].sort(byUrgency).map((a) => {
    const marks = [];
    if (a.acknowledged) {
      const at = unix(a.acknowledged.at);
      marks.push(el('span', { class: 'mark acked', text: `acknowledged by ${a.acknowledged.by || 'someone'}${at ? ` at ${stamp(at)}` : ''}` }));
    }
    if (a.silenced) marks.push(el('span', { class: 'mark silenced', text: 'silenced' }));
    const since = unix(a.since);
    const threshold = thresholdText(a.metric, a.threshold);
    let action = null;
    if (opts.onAck) {
      action = el('td', {});
      if (a.state === 'firing' && !a.acknowledged) {
        const b = el('button', { type: 'button', class: 'ack', text: 'Acknowledge', 'aria-label': `Acknowledge ${a.rule} on ${a.node}` });
        b.addEventListener('click', () => opts.onAck(a, b));
        action.append(b);
      }
    }
    return el(
      'tr',
      { class: `alert-row ${a.state} sev-${a.severity}`, 'data-rule': a.rule, 'data-node': a.node, 'data-state': a.state },
      el('td', {}, el('span', { class: `sev-chip sev-${a.severity}`, text: a.severity })),
      el('td', { text: a.rule }),
      withNode ? el('td', {}, el('a', { href: `/nodes/${encodeURIComponent(a.node)}`, text: a.node })) : null,
      el('td', { class: `state ${a.state}`, text: a.state }),
      el('td', { class: 'num', text: `${metricValue(a.metric, a.value)}${threshold ? ` (${a.direction || 'threshold'} ${threshold})` : ''}` }),
      el('td', { text: since ? stamp(since) : '–' }),
      el('td', { class: 'marks' }, marks.length ? marks.flatMap((m, i) => (i ? [' · ', m] : [m])) : '–'),
      action,
    );
  });
  return el('div', { class: 'table-wrap' }, el('table', { class: 'alerts-table current' },
    el('thead', {}, el('tr', {}, heads.map((h) => el('th', { scope: 'col', text: h })))),
    el('tbody', {}, rows)));
}
