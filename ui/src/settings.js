// Settings (desktop app): the configuration file's fields — local or remote, server address,
// nodes, intervals, timeout, sign-in — validated and saved by the backend with the same checks as
// every dsmon command; and the app's preferences (theme, notifications), saved at once.
import * as api from './api.js';
import { el } from './format.js';

const lines = (text) => text.split('\n').map((s) => s.trim()).filter(Boolean);

export function applyTheme(theme) {
  if (theme === 'light' || theme === 'dark') document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
}

/** Renders the Settings page into `main`; returns a cleanup function. */
export function settingsPage(main) {
  // The heading stays while the rest loads (the router may have focused it).
  const heading = el('h1', { text: 'Settings' });
  const show = (...nodes) => {
    while (heading.nextSibling) heading.nextSibling.remove();
    heading.after(...nodes);
  };
  main.replaceChildren(heading);
  show(el('p', { class: 'status-line loading', role: 'status', text: 'Loading…' }));
  let alive = true;
  Promise.all([api.settings(), api.prefs()]).then(
    ([view, prefs]) => alive && show(...render(view, prefs)),
    (e) => alive && show(el('p', { class: 'error', id: 'settings-error', role: 'alert', text: e.message })),
  );
  return () => {
    alive = false;
  };
}

function field(label, input, hint) {
  return el('label', { class: 'field' }, el('span', { text: label }), input, hint ? el('small', { class: 'muted', text: hint }) : null);
}

/** The page below its heading: the configuration form and the app's preferences. */
function render(view, prefs) {
  const s = view.settings;
  const input = (id, value, attrs = {}) => el('input', { id, value: value || '', ...attrs });

  // Where the data comes from.
  const local = el('input', { type: 'radio', name: 'mode', id: 'mode-local', value: 'local' });
  const remote = el('input', { type: 'radio', name: 'mode', id: 'mode-remote', value: 'remote' });
  local.checked = s.mode !== 'remote';
  remote.checked = s.mode === 'remote';
  const serverUrl = input('server-url', s.server_url, { placeholder: 'https://monitor.example.com', type: 'url' });
  const syncMode = () => {
    serverUrl.disabled = !remote.checked;
  };
  local.addEventListener('change', syncMode);
  remote.addEventListener('change', syncMode);
  syncMode();

  // Nodes.
  const nodeRows = el('tbody', { id: 'nodes' });
  const addNode = (n = { name: '', url: '' }) => {
    const name = el('input', { class: 'node-name', value: n.name, placeholder: 'node1', 'aria-label': 'node name' });
    const url = el('input', { class: 'node-url', value: n.url, placeholder: 'http://10.0.0.1:19999', 'aria-label': 'node address' });
    const row = el('tr', {}, el('td', {}, name), el('td', {}, url));
    const remove = el('button', { type: 'button', class: 'remove-node', text: 'Remove', onclick: () => row.remove() });
    row.append(el('td', {}, remove));
    nodeRows.append(row);
  };
  s.nodes.forEach(addNode);
  const add = el('button', { type: 'button', id: 'add-node', text: 'Add node', onclick: () => addNode() });

  const logInterval = input('log-interval', s.log_interval);
  const liveInterval = input('live-interval', s.live_interval);
  const timeout = input('timeout', s.timeout);

  // Sign-in.
  const a = s.auth || { issuer: '', client_id: '', client_secret_set: false, admins: [], users: [] };
  const useAuth = el('input', { type: 'checkbox', id: 'use-auth' });
  useAuth.checked = Boolean(s.auth);
  const issuer = input('issuer', a.issuer, { placeholder: 'https://accounts.google.com' });
  const clientId = input('client-id', a.client_id, { placeholder: '….apps.googleusercontent.com' });
  const clientSecret = input('client-secret', '', {
    type: 'password',
    autocomplete: 'off',
    placeholder: a.client_secret_set ? '(unchanged)' : 'the desktop client secret',
  });
  const admins = el('textarea', { id: 'admins', rows: 3 });
  admins.value = a.admins.join('\n');
  const users = el('textarea', { id: 'users', rows: 3 });
  users.value = a.users.join('\n');
  const authBox = el('div', { class: 'auth-fields' },
    field('Issuer', issuer, 'empty: Google'),
    field('Client id', clientId, 'a "Desktop app" OAuth client'),
    field('Client secret', clientSecret),
    field('Admins', admins, 'one email per line'),
    field('Users', users, 'one email or *@domain per line'));
  const syncAuth = () => {
    authBox.hidden = !useAuth.checked;
  };
  useAuth.addEventListener('change', syncAuth);
  syncAuth();

  const status = el('p', { class: 'status-line', id: 'settings-status', role: 'status' });
  if (view.error) {
    status.textContent = `The file does not load as it is: ${view.error}`;
    status.className = 'status-line error';
  }

  const collect = () => ({
    mode: remote.checked ? 'remote' : 'local',
    server_url: serverUrl.value.trim(),
    nodes: [...nodeRows.querySelectorAll('tr')].map((r) => ({
      name: r.querySelector('.node-name').value.trim(),
      url: r.querySelector('.node-url').value.trim(),
    })),
    log_interval: logInterval.value.trim(),
    live_interval: liveInterval.value.trim(),
    timeout: timeout.value.trim(),
    auth: useAuth.checked
      ? {
          issuer: issuer.value.trim(),
          client_id: clientId.value.trim(),
          client_secret: clientSecret.value || null,
          client_secret_set: a.client_secret_set,
          admins: lines(admins.value),
          users: lines(users.value),
        }
      : null,
  });

  const save = el('button', { type: 'submit', id: 'save-settings', class: 'primary', text: 'Save' });
  const form = el('form', { class: 'settings', id: 'settings-form' },
    el('section', { class: 'panel' }, el('h2', { text: 'Data' }),
      el('label', { class: 'radio' }, local, el('span', { text: 'Local: this app polls the nodes and keeps its own history' })),
      el('label', { class: 'radio' }, remote, el('span', { text: 'Remote: show a dsmon server’s data' })),
      field('Server address', serverUrl)),
    el('section', { class: 'panel' }, el('h2', { text: 'Nodes' }),
      el('table', { class: 'nodes-table' }, el('thead', {}, el('tr', {}, el('th', { text: 'Name' }), el('th', { text: 'Netdata address' }), el('th'))), nodeRows),
      add),
    el('section', { class: 'panel' }, el('h2', { text: 'Collection' }),
      field('Log interval', logInterval, 'one row per node per interval, e.g. 10m'),
      field('Live interval', liveInterval, 'e.g. 2s'),
      field('Timeout', timeout, 'per request to an agent, e.g. 3s')),
    el('section', { class: 'panel' }, el('h2', { text: 'Sign-in' }),
      el('label', { class: 'radio' }, useAuth, el('span', { text: 'Require Google sign-in' })),
      authBox),
    el('p', {}, save),
    status);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    save.disabled = true;
    status.textContent = 'Saving…';
    status.className = 'status-line loading';
    try {
      const v = await api.saveSettings(collect());
      status.textContent = `Saved to ${v.path}. The app now runs on the new settings.`;
      status.className = 'status-line ok';
      clientSecret.value = '';
    } catch (err) {
      status.textContent = err.message;
      status.className = 'status-line error';
    } finally {
      save.disabled = false;
    }
  });

  // Preferences: saved at once.
  const theme = el('select', { id: 'theme' },
    ['system', 'light', 'dark'].map((t) => el('option', { value: t, text: t[0].toUpperCase() + t.slice(1) })));
  theme.value = prefs.theme || 'system';
  theme.addEventListener('change', () => {
    applyTheme(theme.value);
    api.setPref('theme', theme.value).catch(() => {});
  });
  const notify = el('input', { type: 'checkbox', id: 'notifications' });
  notify.checked = prefs.notifications === true;
  notify.addEventListener('change', () => api.setPref('notifications', notify.checked).catch(() => {}));

  return [
    el('p', { class: 'muted', text: `Configuration file: ${view.path}` }),
    form,
    el('section', { class: 'panel prefs' }, el('h2', { text: 'This app' }),
      field('Theme', theme),
      el('label', { class: 'radio' }, notify, el('span', { text: 'Notify me when a node goes down or comes back' }))),
  ];
}
