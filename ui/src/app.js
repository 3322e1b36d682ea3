// dsmon's pages: a small path router (/live, /history, /nodes/NAME, /alerts, /users, /audit) over one shared
// live store fed by the backend's live stream. Which pages exist for the signed-in role comes from
// /api/me; the backend enforces the same rule on every route, so this only avoids showing dead ends.
import * as api from './api.js';
import { LiveHistory, livePage } from './live.js';
import { historyPage } from './history.js';
import { nodePage } from './node.js';
import { usersPage } from './users.js';
import { auditPage } from './audit.js';
import { tokensPage } from './tokens.js';
import { alertsPage } from './alerts.js';
import { settingsPage, applyTheme } from './settings.js';
import { interceptLinks, navigate } from './nav.js';
import { el } from './format.js';

/** The live data every page shares: the latest snapshot, a few minutes of history, listeners. */
const store = {
  me: null,
  prefs: {},
  snapshot: null,
  history: new LiveHistory(),
  listeners: new Set(),
  onSnapshot(f) {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  },
  push(snap) {
    if (this.snapshot && snap.seq <= this.snapshot.seq && snap.ts <= this.snapshot.ts) return;
    this.snapshot = snap;
    this.history.add(snap);
    for (const f of this.listeners) f(snap);
  },
};

// #conn is a status region (index.html): it changes only when the stream's state does, so a
// screen reader hears "reconnecting…" and "live" once each rather than on every event.
const conn = document.getElementById('conn');
function setConn(state) {
  const text = state === 'live' ? 'live' : 'reconnecting…';
  if (conn.textContent !== text) conn.textContent = text;
  conn.className = `conn ${state}`;
}

const main = document.getElementById('main');
let cleanup = null;
const ADMIN_PAGES = new Set(['history', 'alerts', 'users', 'audit', 'tokens', 'settings']);

function notAuthorized() {
  main.replaceChildren(
    el('h1', { text: 'Not authorized' }),
    el('p', { text: 'This page is for Admins. Your role shows the live view only.' }),
    el('p', {}, el('a', { href: '/live', text: 'Go to the live view' })),
  );
}

/**
 * Names the page in the title ("History · dsmon", from its heading) and, after a navigation in
 * the page, moves focus there, so that keyboard and screen-reader users start on the new page
 * rather than on a link that no longer exists. `focusKey` finds the same control again when only
 * the page's parameters changed (a history range button); the page load keeps the browser's focus.
 */
function settle(navigated, samePage, focusKey) {
  const h1 = main.querySelector('h1');
  document.title = h1 && h1.textContent ? `${h1.textContent} · dsmon` : 'dsmon';
  if (h1) h1.tabIndex = -1;
  if (!navigated) return;
  if (samePage) {
    if (!focusKey) return; // focus was not in the page (a chart zoomed with the mouse): leave it
    const again = main.querySelector(focusKey);
    if (again && !again.hidden && !again.disabled) {
      again.focus();
      return;
    }
  }
  if (h1) h1.focus();
}

/** A selector for the focused control in the page, to focus its successor after a redraw. */
function focusedKey() {
  const e = document.activeElement;
  if (!e || e === main || !main.contains(e)) return null;
  if (e.id) return `#${CSS.escape(e.id)}`;
  if (e.dataset.range) return `[data-range="${CSS.escape(e.dataset.range)}"]`;
  return 'h1';
}

let shownPath = null;

/** Draws the page the address names; `navigated`: after a click, back/forward or the app's menu. */
function route(navigated = false) {
  const focusKey = focusedKey();
  if (cleanup) cleanup();
  cleanup = null;
  const parts = location.pathname.split('/').filter(Boolean);
  let page = parts[0] || 'live';
  if (page === 'history' && !location.search && store.prefs.last_range) {
    // The desktop app (and this browser) reopen history on the range last looked at.
    history.replaceState(null, '', `/history?${store.prefs.last_range}`);
  }
  const params = new URLSearchParams(location.search);
  const samePage = location.pathname === shownPath;
  shownPath = location.pathname;
  if (compact && page !== 'compact') {
    // The live-view window shows the node cards only (its capability allows no other page's
    // commands): a card's link or a typed path comes back to them.
    history.replaceState(null, '', '/compact');
    page = 'compact';
  }
  if (page === 'compact') page = 'live';
  for (const a of document.querySelectorAll('[data-nav]')) {
    a.classList.toggle('active', a.dataset.nav === page);
  }
  try {
    if (ADMIN_PAGES.has(page) && store.me.role !== 'admin') notAuthorized();
    else if (page === 'live') cleanup = livePage(main, store, params, { compact });
    else if (page === 'history') cleanup = historyPage(main, params);
    else if (page === 'alerts') cleanup = alertsPage(main);
    else if (page === 'users') cleanup = usersPage(main, store.me);
    else if (page === 'audit') cleanup = auditPage(main);
    else if (page === 'tokens' && !api.desktop) cleanup = tokensPage(main);
    else if (page === 'settings' && api.desktop) cleanup = settingsPage(main);
    else if (page === 'nodes' && parts[1]) cleanup = nodePage(main, store, decodeURIComponent(parts[1]));
    else main.replaceChildren(el('h1', { text: 'Not found' }), el('p', {}, el('a', { href: '/live', text: 'Back to the live view' })));
  } catch (e) {
    main.replaceChildren(el('p', { class: 'error', role: 'alert', text: `This page failed: ${e.message}` }));
  }
  settle(navigated, samePage, focusKey);
}

const onNavigate = () => route(true);

/** The header: pages for this role, who is signed in, sign out; or the local-mode banner. */
function showIdentity(me) {
  for (const a of document.querySelectorAll('[data-nav]')) {
    // Settings is the desktop app's page; Tokens the server's (the app's local mode has no HTTP
    // API, and its remote mode calls the server's use cases through its own commands, tokens not
    // among them: they are made in the server's web UI).
    a.hidden = (ADMIN_PAGES.has(a.dataset.nav) && me.role !== 'admin') || (a.dataset.nav === 'settings' && !api.desktop)
      || (a.dataset.nav === 'tokens' && (api.desktop || !me.auth));
  }
  if (api.desktop) {
    const open = document.getElementById('open-live');
    open.hidden = compact;
    open.onclick = () => api.openLiveWindow().catch(() => {});
  }
  const who = document.getElementById('who');
  if (me.mode === 'remote') who.before(el('span', { class: 'remote muted', id: 'remote', text: `server ${me.server}` }));
  if (!me.auth) {
    who.replaceChildren(el('span', { class: 'local muted', text: 'local mode', title: 'No sign-in is configured: dsmon serves this machine only and everyone is Admin.' }));
    document.getElementById('banner').hidden = false;
    return;
  }
  const out = el('button', { type: 'button', id: 'signout', text: 'Sign out' });
  out.addEventListener('click', async () => {
    try {
      await api.logout();
    } finally {
      location.assign(api.desktop ? '/live' : '/auth/signed-out');
    }
  });
  who.replaceChildren(
    el('span', { class: 'email muted', id: 'me', text: me.email, title: me.name || '' }),
    el('span', { class: `role ${me.role}`, id: 'role', text: me.role === 'admin' ? 'Admin' : 'User' }),
    out,
  );
}

/** The desktop app's sign-in screen: the system browser signs in, the app waits for it. */
function signInScreen(message) {
  document.getElementById('conn').hidden = true;
  const status = el('p', { class: 'status-line', id: 'sign-in-status', role: 'status' });
  const button = el('button', { type: 'button', id: 'sign-in', class: 'primary', text: 'Sign in with Google' });
  button.addEventListener('click', async () => {
    button.disabled = true;
    status.textContent = 'Finish signing in in your browser…';
    status.className = 'status-line loading';
    try {
      await api.signIn();
      location.reload();
    } catch (e) {
      button.disabled = false;
      if (e.kind === 'not_authorized') {
        const heading = el('h1', { id: 'not-authorized', text: 'Not authorized', tabindex: '-1' });
        main.replaceChildren(
          heading,
          el('p', { text: `${e.message}. Ask an administrator for access, or sign in with another account.` }),
          el('p', {}, button),
          status,
        );
        status.textContent = '';
        document.title = 'Not authorized · dsmon';
        heading.focus(); // the screen changed under the button that had focus
      } else {
        status.textContent = e.message;
        status.className = 'status-line error';
      }
    }
  });
  document.title = 'Sign in · dsmon';
  main.replaceChildren(
    el('h1', { text: 'Sign in' }),
    el('p', { text: message || 'dsmon shows its data to signed-in people only. Your browser opens to sign in with Google; come back here afterwards.' }),
    el('p', {}, button),
    status,
  );
}

const compact = location.pathname === '/compact';

async function start() {
  if (compact) document.body.classList.add('compact');
  store.prefs = await api.prefs().catch(() => ({}));
  applyTheme(store.prefs.theme);
  // Another window signed in or out, or Settings restarted the backend: start over (except on
  // the Settings page itself, which shows the outcome of its save).
  api.onSessionChange(() => {
    if (location.pathname !== '/settings') location.reload();
  });
  try {
    store.me = await api.me();
  } catch (e) {
    if (e.status === 401 && api.desktop) {
      signInScreen();
      return;
    }
    if (e.status === 401) {
      location.assign(`/auth/login?next=${encodeURIComponent(location.pathname + location.search)}`);
      return;
    }
    if (e.kind === 'config' && compact) {
      // Settings is the main window's page.
      main.replaceChildren(el('p', { class: 'error', role: 'alert', id: 'config-error', text: `The configuration does not load: ${e.message}. Open Settings in the main window to fix it.` }));
      return;
    }
    if (e.kind === 'config') {
      // The configuration file does not load: Settings can fix it.
      store.me = { role: 'admin', auth: false, desktop: true };
      main.before(el('p', { class: 'banner error', id: 'config-error', text: `The configuration does not load: ${e.message}` }));
      document.getElementById('banner').hidden = true;
      interceptLinks(document.body);
      window.addEventListener('popstate', onNavigate);
      window.addEventListener('dsmon:navigate', onNavigate);
      showIdentity(store.me);
      history.replaceState(null, '', '/settings');
      route();
      return;
    }
    main.replaceChildren(el('p', { class: 'error', role: 'alert', text: `Cannot reach dsmon: ${e.message}` }));
    return;
  }
  api.onNavigateRequest((path) => navigate(path));
  showIdentity(store.me);
  api.live().then((s) => store.push(s), () => setConn('reconnecting'));
  api.subscribeLive((s) => store.push(s), setConn);
  interceptLinks(document.body);
  window.addEventListener('popstate', onNavigate);
  window.addEventListener('dsmon:navigate', onNavigate);
  route();
}

start();
