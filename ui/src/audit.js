// The audit log (Admins only): sign-ins, refused sign-ins with the reason, access denials, role
// changes and re-binds, newest first, a page at a time. A refusal repeated by no known actor within
// an hour is one entry with its count and the last time it was seen.
import * as api from './api.js';
import { dateTime, el } from './format.js';

const PAGE = 50;

export function auditPage(main) {
  const status = el('p', { class: 'status-line loading', role: 'status', text: 'Loading the audit log…' });
  const body = el('tbody');
  const newer = el('button', { type: 'button', text: '← Newer', disabled: true });
  const older = el('button', { type: 'button', text: 'Older →', disabled: true });
  const table = el('table', { class: 'audit' },
    el('thead', {}, el('tr', {}, ...['Time', 'Who', 'What', 'Target', 'Detail'].map((h) => el('th', { text: h })))),
    body);
  main.replaceChildren(el('h1', { text: 'Audit log' }), status, el('div', { class: 'table-wrap' }, table),
    el('div', { class: 'pager' }, newer, older));
  let offset = 0;
  let alive = true;

  async function load() {
    try {
      const p = await api.audit(offset, PAGE);
      if (!alive) return;
      body.replaceChildren(...p.entries.map((e) => el('tr', { class: `action-${e.action}` },
        el('td', { text: e.count > 1 ? `${dateTime(e.ts)} to ${dateTime(e.last_seen)}` : dateTime(e.ts) }),
        el('td', { text: e.actor || '—' }),
        el('td', { text: e.action.replace(/_/g, ' ') + (e.count > 1 ? ` (${e.count} times)` : '') }),
        el('td', { text: e.target || '' }),
        el('td', { text: e.detail || '' }))));
      status.className = 'status-line';
      status.textContent = p.total ? `Entries ${offset + 1}–${offset + p.entries.length} of ${p.total}` : 'Nothing recorded yet.';
      newer.disabled = offset === 0;
      older.disabled = offset + p.entries.length >= p.total;
    } catch (e) {
      status.className = 'status-line error';
      status.textContent = `Could not load the audit log: ${e.message}`;
    }
  }
  newer.addEventListener('click', () => { offset = Math.max(0, offset - PAGE); load(); });
  older.addEventListener('click', () => { offset += PAGE; load(); });
  load();
  return () => { alive = false; };
}
