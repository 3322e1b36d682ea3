// API tokens (Admins only, `dsmon serve`): create one (name, role, expiry), see its secret once
// with a copy button, list them with their last use, revoke. The backend checks the role and
// validates the input; this page only asks. The desktop app does not show this page (its local
// mode has no HTTP API; in remote mode tokens are made in the server's web UI).
import * as api from './api.js';
import { dateTime, el } from './format.js';

const EXPIRIES = [['30d', '30 days'], ['90d', '90 days'], ['365d', '365 days'], ['', 'never']];
const ROLE_LABEL = { admin: 'Admin', user: 'User' };

export function tokensPage(main) {
  const status = el('p', { class: 'status-line loading', role: 'status', id: 'tokens-status', text: 'Loading tokens…' });
  const body = el('tbody');
  const table = el('table', { class: 'users tokens', id: 'tokens-table' },
    el('thead', {}, el('tr', {}, ...['Name', 'Role', 'Created', 'Created by', 'Expires', 'Last used', 'State', ''].map((h) => el('th', { text: h })))),
    body);

  const form = el('form', { class: 'silence-form token-form', id: 'token-form', 'aria-labelledby': 'token-form-h', novalidate: true });
  const nameInput = el('input', { type: 'text', id: 'token-name', name: 'name', maxlength: '64', required: true, autocomplete: 'off', placeholder: 'what uses it, e.g. ci-export' });
  const roleSelect = el('select', { id: 'token-role', name: 'role' },
    el('option', { value: 'user', text: 'User (live view)' }), el('option', { value: 'admin', text: 'Admin (everything; every use audited)' }));
  const expirySelect = el('select', { id: 'token-expires', name: 'expires' }, EXPIRIES.map(([v, t]) => el('option', { value: v, text: t })));
  expirySelect.value = '90d';
  const submit = el('button', { type: 'submit', class: 'primary', id: 'token-create', text: 'Create token' });
  const formStatus = el('p', { class: 'muted', id: 'token-form-status', role: 'status' });
  const created = el('div', { id: 'token-created', class: 'token-created', hidden: true });
  const field = (id, label, input) => el('div', { class: 'field' }, el('label', { for: id, text: label }), input);
  form.append(
    el('h3', { id: 'token-form-h', text: 'New token' }),
    el('p', { class: 'muted', text: 'Scripts send it as "Authorization: Bearer <token>". It acts with its role on the API only (no pages), as token:NAME in the audit log.' }),
    field('token-name', 'Name', nameInput),
    field('token-role', 'Role', roleSelect),
    field('token-expires', 'Expires', expirySelect),
    el('div', { class: 'field' }, el('span'), el('div', { class: 'inline' }, submit)),
    formStatus,
  );

  main.replaceChildren(el('h1', { text: 'API tokens' }), created, status, el('div', { class: 'table-wrap' }, table), form);
  let alive = true;

  function showSecret(t) {
    const secret = el('input', { type: 'text', id: 'token-secret', readonly: true, value: t.secret, 'aria-label': `secret of ${t.name}`, spellcheck: 'false' });
    const copied = el('span', { class: 'muted', role: 'status', id: 'token-copied' });
    const copy = el('button', { type: 'button', id: 'token-copy', text: 'Copy' });
    copy.addEventListener('click', async () => {
      secret.select();
      try {
        await navigator.clipboard.writeText(t.secret);
        copied.textContent = 'Copied.';
      } catch {
        copied.textContent = 'Selected: press Ctrl+C (the browser refused the clipboard).';
      }
    });
    const done = el('button', { type: 'button', id: 'token-done', text: 'Done' });
    done.addEventListener('click', () => { created.hidden = true; created.replaceChildren(); nameInput.focus(); });
    created.replaceChildren(
      el('p', { class: 'warning', role: 'alert', text: `Copy the secret of "${t.name}" now: it is shown this once and cannot be shown again (dsmon keeps only its hash).` }),
      el('div', { class: 'inline' }, secret, copy, done, copied),
    );
    created.hidden = false;
    secret.focus();
    secret.select();
  }

  async function revoke(t) {
    if (!window.confirm(`Revoke "${t.name}"? Whatever uses it gets 401 from now on.`)) return;
    status.className = 'status-line';
    status.textContent = `Revoking ${t.name}…`;
    try {
      await api.revokeToken(t.id);
      status.textContent = `Revoked ${t.name}.`;
      load(false);
    } catch (e) {
      status.className = 'status-line error';
      status.textContent = `Could not revoke ${t.name}: ${e.message}`;
    }
  }

  function stateOf(t) {
    if (t.revoked) return `revoked ${dateTime(t.revoked)}`;
    if (t.expires && t.expires * 1000 <= Date.now()) return 'expired';
    return 'active';
  }

  function render(list) {
    body.replaceChildren(...list.map((t) => {
      const state = stateOf(t);
      let action = null;
      if (state === 'active') {
        action = el('button', { type: 'button', class: 'revoke', text: 'Revoke', 'data-name': t.name });
        action.addEventListener('click', () => revoke(t));
      }
      return el('tr', { 'data-name': t.name },
        el('td', { text: t.name }),
        el('td', {}, el('span', { class: `role ${t.role}`, text: ROLE_LABEL[t.role] || t.role })),
        el('td', { text: dateTime(t.created) }),
        el('td', { text: t.created_by }),
        el('td', { text: t.expires ? dateTime(t.expires) : 'never' }),
        el('td', { text: t.last_used ? dateTime(t.last_used) : 'never' }),
        el('td', { class: `token-state ${state.split(' ')[0]}`, text: state }),
        el('td', {}, action));
    }));
  }

  async function load(announce = true) {
    try {
      const r = await api.tokens();
      if (!alive) return;
      render(r.tokens);
      if (announce || status.classList.contains('loading')) {
        status.className = 'status-line';
        status.textContent = r.tokens.length ? `${r.tokens.length} token${r.tokens.length === 1 ? '' : 's'}` : 'No tokens yet.';
      }
    } catch (e) {
      status.className = 'status-line error';
      status.textContent = `Could not load tokens: ${e.message}`;
    }
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = nameInput.value.trim();
    if (!name) {
      formStatus.className = 'error';
      formStatus.textContent = 'Give the token a name: what uses it.';
      nameInput.focus();
      return;
    }
    submit.disabled = true;
    formStatus.className = 'muted';
    formStatus.textContent = 'Creating the token…';
    try {
      const t = await api.createToken({ name, role: roleSelect.value, expires: expirySelect.value || null });
      formStatus.textContent = '';
      nameInput.value = '';
      showSecret(t);
      load();
    } catch (err) {
      formStatus.className = 'error';
      formStatus.textContent = `Could not create the token: ${err.message}`;
    } finally {
      submit.disabled = false;
    }
  });

  load();
  return () => { alive = false; };
}
