// Alerts (Admins only): what fires now (acknowledge it), silences (create one, expire it), the
// alert history, the delivery log, and the configuration's rules, notifiers (send a test) and
// maintenance windows. The backend decides and records; this page asks and shows its answers.
// Everything but the configuration is asked for again every few seconds while the page is open;
// a section is redrawn only when its answer changed, so a focused button stays put.
import * as api from './api.js';
import { alertsTable, humanSecs, metricValue, refreshAlerts, thresholdText, unix } from './alerting.js';
import { el, stamp } from './format.js';

const REFRESH_MS = 5000;
const LIMIT = 200;

const EXPIRIES = [['1h', '1 hour'], ['4h', '4 hours'], ['24h', '24 hours'], ['7d', '7 days'], ['date', 'until a date…']];

/** A section with a heading (its label), a status line and a body. */
function section(id, title) {
  const heading = el('h2', { id: `${id}-h`, text: title, tabindex: '-1' });
  const status = el('p', { class: 'muted section-status', id: `${id}-status` });
  const body = el('div', { class: 'section-body', id: `${id}-body` });
  const box = el('section', { class: 'panel alerts-section', id, 'aria-labelledby': `${id}-h` }, heading, status, body);
  return { box, heading, status, body, shown: null };
}

/** A table with column headers: heads are strings, rows are <tr>s. */
function table(cls, heads, rows) {
  return el('div', { class: 'table-wrap' }, el('table', { class: `alerts-table ${cls}` },
    el('thead', {}, el('tr', {}, heads.map((h) => el('th', { scope: 'col', text: h })))),
    el('tbody', {}, rows)));
}

const globs = (v) => (Array.isArray(v) ? (v.length ? v.join(', ') : 'all') : v || 'all');
const secs = (v) => (v === null || v === undefined || v === '' ? '–' : typeof v === 'number' ? humanSecs(v) : String(v));
const when = (t) => {
  const u = unix(t);
  return u ? stamp(u) : '–';
};

/** Draws `draw(data)` into the section unless the data is what it already shows. */
function show(sec, data, draw) {
  const key = JSON.stringify(data);
  if (key === sec.shown) return;
  sec.shown = key;
  const hadFocus = sec.body.contains(document.activeElement);
  sec.body.replaceChildren(...[].concat(draw(data)));
  // The focused control went away with the redraw (an Acknowledge or Expire button that did its
  // work): continue from the section's heading rather than from the top of the page.
  if (hadFocus && !sec.body.contains(document.activeElement)) sec.heading.focus();
}

/**
 * Runs the action `f` once at a time for `button`. The button is marked busy rather than disabled:
 * a disabled button drops the keyboard focus, which should stay until the redraw moves it on.
 */
async function once(button, f) {
  if (button.getAttribute('aria-disabled') === 'true') return;
  button.setAttribute('aria-disabled', 'true');
  try {
    await f();
  } finally {
    button.removeAttribute('aria-disabled');
  }
}

function failed(sec, what, e) {
  sec.status.className = 'muted section-status error';
  sec.status.textContent = `Could not ${what}: ${e.message}`;
}

function fine(sec, text) {
  sec.status.className = 'muted section-status';
  sec.status.textContent = text;
}

export function alertsPage(main) {
  const status = el('p', { class: 'status-line', id: 'alerts-status', role: 'status' });
  const current = section('current', 'Firing and pending');
  const silences = section('silences', 'Silences');
  const events = section('events', 'History');
  const deliveries = section('deliveries', 'Delivery log');
  const rules = section('rules', 'Rules');
  const notifiers = section('notifiers', 'Notifiers');
  const maintenance = section('maintenance', 'Maintenance windows');
  let alive = true;
  let config = { rules: [], notifiers: [], maintenance: [] };

  // ---- the silence form ----
  const form = el('form', { class: 'silence-form', id: 'silence-form', 'aria-labelledby': 'silence-form-h', novalidate: true });
  const nodesInput = el('input', { type: 'text', id: 'silence-nodes', name: 'nodes', placeholder: 'web-* (any node)', autocomplete: 'off' });
  const ruleSelect = el('select', { id: 'silence-rule', name: 'rule' }, el('option', { value: '', text: 'any rule' }));
  const severitySelect = el('select', { id: 'silence-severity', name: 'severity' },
    el('option', { value: '', text: 'any severity' }), el('option', { value: 'warning', text: 'warning' }), el('option', { value: 'critical', text: 'critical' }));
  const expirySelect = el('select', { id: 'silence-expires', name: 'expires' }, EXPIRIES.map(([v, t]) => el('option', { value: v, text: t })));
  const untilInput = el('input', { type: 'datetime-local', id: 'silence-until', name: 'until', hidden: true, 'aria-label': 'expires at' });
  const commentInput = el('textarea', { id: 'silence-comment', name: 'comment', rows: '2', required: true, placeholder: 'why, and who to ask' });
  const formStatus = el('p', { class: 'muted', id: 'silence-form-status', role: 'status' });
  const submit = el('button', { type: 'submit', class: 'primary', id: 'silence-create', text: 'Create silence' });
  const field = (id, label, input, hint) => el('div', { class: 'field' },
    el('label', { for: id, text: label }), input, hint ? el('small', { class: 'muted', text: hint }) : null);
  form.append(
    el('h3', { id: 'silence-form-h', text: 'New silence' }),
    el('p', { class: 'muted', text: 'Matching alerts are still evaluated and recorded, only not delivered. Match by node, rule or severity (at least one).' }),
    field('silence-nodes', 'Nodes (glob)', nodesInput),
    field('silence-rule', 'Rule', ruleSelect),
    field('silence-severity', 'Severity', severitySelect),
    el('div', { class: 'field' }, el('label', { for: 'silence-expires', text: 'Expires' }),
      el('div', { class: 'inline' }, expirySelect, untilInput)),
    field('silence-comment', 'Comment (required)', commentInput),
    el('div', { class: 'field' }, el('span'), el('div', { class: 'inline' }, submit)),
    formStatus,
  );
  expirySelect.addEventListener('change', () => {
    untilInput.hidden = expirySelect.value !== 'date';
    if (!untilInput.hidden) untilInput.focus();
  });
  const formError = (text) => {
    formStatus.className = 'error';
    formStatus.textContent = text;
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    once(submit, createSilence);
  });
  async function createSilence() {
    const comment = commentInput.value.trim();
    if (!comment) {
      formError('A comment is required: say why, so that others know.');
      commentInput.focus();
      return;
    }
    let expires = expirySelect.value;
    if (expires === 'date') {
      const t = new Date(untilInput.value).getTime();
      if (!(t > Date.now())) {
        formError('Choose an expiry in the future.');
        untilInput.focus();
        return;
      }
      expires = new Date(t).toISOString();
    }
    const body = {
      nodes: nodesInput.value.trim() || null,
      rule: ruleSelect.value || null,
      severity: severitySelect.value || null,
      expires,
      comment,
    };
    formStatus.className = 'muted';
    formStatus.textContent = 'Creating the silence…';
    try {
      const s = await api.createSilence(body);
      formStatus.className = 'ok';
      formStatus.textContent = `Silence created, until ${when(s.expires)}.`;
      nodesInput.value = '';
      ruleSelect.value = '';
      severitySelect.value = '';
      expirySelect.value = '1h';
      untilInput.hidden = true;
      commentInput.value = '';
      refresh();
      refreshAlerts();
    } catch (err) {
      formError(`Could not create the silence: ${err.message}`);
    }
  }

  const silencesList = el('div', { id: 'silences-list' });
  silences.body.replaceWith(el('div', { class: 'section-body' }, silencesList, form));
  silences.body = silencesList;

  main.replaceChildren(
    el('h1', { text: 'Alerts' }),
    status,
    current.box,
    silences.box,
    events.box,
    deliveries.box,
    el('div', { class: 'alerts-config' }, rules.box, notifiers.box, maintenance.box),
  );

  // ---- actions ----
  const acknowledge = (a, button) => once(button, async () => {
    status.className = 'status-line';
    status.textContent = `Acknowledging ${a.rule} on ${a.node}…`;
    try {
      await api.acknowledge(a.rule, a.node);
      status.textContent = `Acknowledged ${a.rule} on ${a.node}: no repeats until it resolves.`;
      refresh();
      refreshAlerts();
    } catch (e) {
      status.className = 'status-line error';
      status.textContent = `Could not acknowledge ${a.rule} on ${a.node}: ${e.message}`;
    }
  });

  const expire = (s, button) => once(button, async () => {
    status.className = 'status-line';
    status.textContent = 'Expiring the silence…';
    try {
      await api.expireSilence(s.id);
      status.textContent = `Silence expired: ${s.comment}`;
      refresh();
      refreshAlerts();
    } catch (e) {
      status.className = 'status-line error';
      status.textContent = `Could not expire the silence: ${e.message}`;
    }
  });

  const sendTest = (n, button, outcome) => once(button, async () => {
    outcome.className = 'test-outcome muted';
    outcome.textContent = 'Sending…';
    try {
      const d = await api.testNotifier(n.name);
      outcome.className = `test-outcome ${d.ok ? 'ok' : 'error'}`;
      outcome.textContent = `${d.ok ? 'Delivered' : 'Failed'} after ${d.attempts} attempt${d.attempts === 1 ? '' : 's'}: ${d.answer || 'no answer'}`;
      refresh();
    } catch (e) {
      outcome.className = 'test-outcome error';
      outcome.textContent = `Could not send: ${e.message}`;
    }
  });

  // ---- drawing ----
  function drawCurrent(alerts) {
    const firing = alerts.filter((a) => a.state === 'firing').length;
    const pending = alerts.length - firing;
    fine(current, alerts.length ? `${firing} firing, ${pending} pending` : '');
    if (!alerts.length) return el('p', { class: 'empty', text: 'No alerts firing.' });
    return alertsTable(alerts, { onAck: acknowledge });
  }

  function drawSilences(list) {
    const active = list.filter((s) => s.active).length;
    fine(silences, list.length ? `${active} active, ${list.length - active} recently expired` : '');
    if (!list.length) return el('p', { class: 'empty', text: 'No silences.' });
    return table('silences', ['State', 'Nodes', 'Rule', 'Severity', 'Expires', 'Comment', 'Created', 'Action'], list.map((s) => {
      let action = null;
      if (s.active) {
        action = el('button', { type: 'button', class: 'expire', text: 'Expire', 'aria-label': `Expire the silence "${s.comment}"` });
        action.addEventListener('click', () => expire(s, action));
      }
      return el('tr', { class: `silence ${s.active ? 'active' : 'expired'}`, 'data-id': s.id },
        el('td', {}, el('span', { class: `silence-state ${s.active ? 'active' : 'expired'}`, text: s.active ? 'active' : 'expired' })),
        el('td', { text: s.nodes || 'any' }),
        el('td', { text: s.rule || 'any' }),
        el('td', { text: s.severity || 'any' }),
        el('td', { text: when(s.expires) }),
        el('td', { class: 'comment', text: s.comment }),
        el('td', { text: `${s.created_by || ''}${s.created ? `, ${when(s.created)}` : ''}` }),
        el('td', {}, action));
    }));
  }

  const ruleMetric = (name) => (config.rules.find((r) => r.name === name) || {}).metric;

  function drawEvents(list) {
    fine(events, list.length ? `${list.length} event${list.length === 1 ? '' : 's'} in the last 24 hours, newest first` : '');
    if (!list.length) return el('p', { class: 'empty', text: 'No alert has fired yet.' });
    return table('events', ['Time', 'Rule', 'Node', 'Severity', 'State', 'Value', 'Silenced'], list.map((e) => {
      const metric = ruleMetric(e.rule);
      const threshold = thresholdText(metric, e.threshold);
      return el('tr', { class: `event ${e.state}`, 'data-rule': e.rule, 'data-node': e.node, 'data-state': e.state },
        el('td', { text: when(e.at) }),
        el('td', { text: e.rule }),
        el('td', {}, el('a', { href: `/nodes/${encodeURIComponent(e.node)}`, text: e.node })),
        el('td', {}, el('span', { class: `sev-chip sev-${e.severity}`, text: e.severity })),
        el('td', { class: `state ${e.state}`, text: e.state }),
        el('td', { class: 'num', text: `${metric ? metricValue(metric, e.value) : e.value ?? '–'}${threshold ? ` (threshold ${threshold})` : ''}` }),
        el('td', { text: e.silenced ? 'silenced' : '' }));
    }));
  }

  function drawDeliveries(list) {
    const failedN = list.filter((d) => !d.ok).length;
    fine(deliveries, list.length ? `The last ${list.length} deliveries, newest first${failedN ? ` · ${failedN} failed` : ''}` : '');
    if (!list.length) return el('p', { class: 'empty', text: 'Nothing delivered yet.' });
    return table('deliveries', ['Time', 'Notifier', 'Kind', 'Rule', 'Nodes', 'Outcome', 'Attempts', 'Answer'], list.map((d) =>
      el('tr', { class: `delivery ${d.ok ? 'ok' : 'failed'}`, 'data-id': d.id, 'data-notifier': d.notifier, 'data-kind': d.kind },
        el('td', { text: when(d.at) }),
        el('td', { text: `${d.notifier}${d.type ? ` (${d.type})` : ''}` }),
        el('td', { text: d.kind }),
        el('td', { text: d.rule || '' }),
        el('td', { text: (d.nodes || []).join(', ') }),
        el('td', { class: 'outcome' }, el('span', { class: `outcome ${d.ok ? 'ok' : 'failed'}`, text: d.ok ? 'ok' : 'failed' })),
        el('td', { class: 'num', text: String(d.attempts ?? '') }),
        el('td', { class: 'answer', text: d.answer || '' }))));
  }

  function condition(r) {
    if (r.metric === 'down' || r.metric === 'stale') return r.metric;
    const direction = r.direction || (r.above !== undefined && r.above !== null ? 'above' : 'below');
    const t = r.threshold ?? r.above ?? r.below;
    return `${r.metric} ${direction} ${thresholdText(r.metric, t) || t}`;
  }

  function drawRules(list) {
    fine(rules, list.length ? '' : 'No rules: add [[alerts.rules]] to the configuration.');
    if (!list.length) return [];
    return table('rules', ['Name', 'Condition', 'For', 'Clear', 'Severity', 'Nodes', 'Notify', 'Repeat'], list.map((r) =>
      el('tr', { 'data-rule': r.name },
        el('td', { text: r.name }),
        el('td', { text: condition(r) }),
        el('td', { text: secs(r.for ?? r.for_) }),
        el('td', { text: r.clear === null || r.clear === undefined || r.clear === (r.threshold ?? r.above ?? r.below) ? '–' : thresholdText(r.metric, r.clear) || String(r.clear) }),
        el('td', {}, el('span', { class: `sev-chip sev-${r.severity}`, text: r.severity })),
        el('td', { text: globs(r.nodes) }),
        el('td', { text: Array.isArray(r.notify) && r.notify.length ? r.notify.join(', ') : 'nobody' }),
        el('td', { text: r.repeat ? secs(r.repeat) : 'no' }))));
  }

  function drawNotifiers(list) {
    fine(notifiers, list.length ? '' : 'No notifiers: add [[alerts.notifiers]] to the configuration.');
    if (!list.length) return [];
    return table('notifiers', ['Name', 'Type', 'Target', 'Test'], list.map((n) => {
      const outcome = el('span', { class: 'test-outcome', role: 'status' });
      const b = el('button', { type: 'button', class: 'send-test', text: 'Send test', 'aria-label': `Send a test through ${n.name}` });
      b.addEventListener('click', () => sendTest(n, b, outcome));
      return el('tr', { 'data-notifier': n.name },
        el('td', { text: n.name }),
        el('td', { text: n.type || n.kind || '' }),
        el('td', { class: 'target', text: n.target || '' }),
        el('td', {}, b, ' ', outcome));
    }));
  }

  function schedule(m) {
    if (m.cron) return `cron ${m.cron} for ${secs(m.duration)}`;
    if (m.schedule && typeof m.schedule === 'string') return m.schedule;
    const days = Array.isArray(m.days) && m.days.length ? m.days.join(', ') : 'every day';
    return `${days} ${m.start || ''}–${m.end || ''}`;
  }

  function drawMaintenance(list) {
    fine(maintenance, '');
    if (!list.length) return el('p', { class: 'empty', text: 'No maintenance windows.' });
    return table('maintenance', ['Name', 'When', 'Time zone', 'Nodes', 'Rules', 'Now'], list.map((m, i) => {
      const open = m.open ?? m.open_now ?? m.active;
      return el('tr', { 'data-open': open ? 'yes' : 'no' },
        el('td', { text: m.name || `window ${i + 1}` }),
        el('td', { text: schedule(m) }),
        el('td', { text: m.timezone || 'UTC' }),
        el('td', { text: globs(m.nodes) }),
        el('td', { text: globs(m.rules) }),
        el('td', {}, open ? el('span', { class: 'open-now', text: 'open now' }) : el('span', { class: 'muted', text: 'closed' })));
    }));
  }

  // ---- loading ----
  function load(sec, what, ask, pick, draw) {
    return ask().then(
      (answer) => {
        if (alive) show(sec, pick(answer), draw);
      },
      (e) => {
        if (alive) failed(sec, what, e);
      },
    );
  }

  let timer = null;
  async function refresh() {
    await Promise.all([
      load(current, 'load the current alerts', api.alerts, (a) => a.alerts || [], drawCurrent),
      load(silences, 'load the silences', api.silences, (a) => a.silences || [], drawSilences),
      load(events, 'load the alert history', () => api.alertHistory({ limit: LIMIT }), (a) => a.events || [], drawEvents),
      load(deliveries, 'load the delivery log', () => api.alertDeliveries(LIMIT), (a) => a.deliveries || [], drawDeliveries),
    ]);
  }

  async function start() {
    status.className = 'status-line loading';
    status.textContent = 'Loading alerts…';
    try {
      config = await api.alertConfig();
      if (!alive) return;
      config = { rules: config.rules || [], notifiers: config.notifiers || [], maintenance: config.maintenance || [] };
      for (const r of config.rules) ruleSelect.append(el('option', { value: r.name, text: r.name }));
      show(rules, config.rules, drawRules);
      show(notifiers, config.notifiers, drawNotifiers);
      show(maintenance, config.maintenance, drawMaintenance);
      status.className = 'status-line';
      status.textContent = `${config.rules.length} rule${config.rules.length === 1 ? '' : 's'}, ${config.notifiers.length} notifier${config.notifiers.length === 1 ? '' : 's'}`;
    } catch (e) {
      if (!alive) return;
      status.className = 'status-line error';
      status.textContent = `Could not load the alerts configuration: ${e.message}`;
    }
    await refresh();
    if (alive) timer = setInterval(() => {
      if (!document.hidden) refresh();
    }, REFRESH_MS);
  }

  start();
  return () => {
    alive = false;
    clearInterval(timer);
  };
}
