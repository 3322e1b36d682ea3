// Users (Admins only): everyone who has signed in or tried to, their role and last sign-in; an
// Admin can set a role or block a user, and re-bind an address to the other account that last
// tried it. The backend decides and re-checks; this page only asks.
import * as api from './api.js';
import { dateTime, el } from './format.js';

const ROLE_LABEL = { admin: 'Admin', user: 'User' };

export function usersPage(main, me) {
  const status = el('p', { class: 'status-line loading', role: 'status', text: 'Loading users…' });
  const body = el('tbody');
  const table = el('table', { class: 'users' },
    el('thead', {}, el('tr', {}, ...['Email', 'Name', 'Role', 'Access', 'Last sign-in'].map((h) => el('th', { text: h })))),
    body);
  main.replaceChildren(el('h1', { text: 'Users' }), status, el('div', { class: 'table-wrap' }, table));
  let alive = true;

  async function change(email, what) {
    status.className = 'status-line';
    status.textContent = `Saving ${email}…`;
    try {
      render(await api.changeUser(email, what));
      status.textContent = `Saved ${email}.`;
    } catch (e) {
      status.className = 'status-line error';
      status.textContent = `Could not change ${email}: ${e.message}`;
    }
  }

  function roleCell(u) {
    if (u.config_admin) return el('td', {}, el('span', { class: 'role admin', text: 'Admin' }), el('span', { class: 'muted', text: ' (configuration file)' }));
    const select = el('select', { 'aria-label': `role of ${u.email}`, 'data-email': u.email });
    const current = u.role_source === 'admin' ? u.role : '';
    const fromConfig = u.role_source === 'admin' ? 'from configuration' : `from configuration: ${ROLE_LABEL[u.role] || 'none'}`;
    for (const [value, label] of [['', fromConfig], ['user', 'User'], ['admin', 'Admin']]) {
      const o = el('option', { value, text: label });
      if (value === current) o.selected = true;
      select.append(o);
    }
    select.addEventListener('change', () => change(u.email, { role: select.value || null }));
    return el('td', {}, select);
  }

  // Another account signed in with this address and was refused: offer to bind the address to it.
  function rebindButton(u) {
    if (!u.other_account_at) return [];
    const when = dateTime(u.other_account_at);
    const b = el('button', { type: 'button', text: 'Re-bind', 'data-email': u.email, class: 'rebind',
      title: `Another account signed in as ${u.email} at ${when} and was refused` });
    b.addEventListener('click', () => {
      if (window.confirm(`Bind ${u.email} to the other account that tried it at ${when}? The account it is bound to now loses access.`)) {
        change(u.email, { rebind: true });
      }
    });
    return [' ', b];
  }

  function accessCell(u) {
    if (u.config_admin) return el('td', {}, 'always', rebindButton(u));
    const state = u.blocked ? 'blocked' : u.role ? 'allowed' : 'not authorized';
    const b = el('button', { type: 'button', text: u.blocked ? 'Unblock' : 'Block', 'data-email': u.email, class: 'block' });
    b.addEventListener('click', () => change(u.email, { blocked: !u.blocked }));
    return el('td', {}, el('span', { class: `access ${state.replace(' ', '-')}`, text: state }), ' ', b, rebindButton(u));
  }

  function render(list) {
    if (!alive) return;
    body.replaceChildren(...list.map((u) => el('tr', { 'data-email': u.email },
      el('td', { text: u.email + (u.email === me.email ? ' (you)' : '') }),
      el('td', { text: u.name || '' }),
      roleCell(u),
      accessCell(u),
      el('td', { text: u.last_sign_in ? dateTime(u.last_sign_in) : 'never' }))));
    if (status.classList.contains('loading')) {
      status.className = 'status-line';
      status.textContent = list.length ? `${list.length} user${list.length === 1 ? '' : 's'}` : 'Nobody has signed in yet.';
    }
  }

  api.users().then(render, (e) => {
    status.className = 'status-line error';
    status.textContent = `Could not load users: ${e.message}`;
  });
  return () => { alive = false; };
}
