// dsmon's pages: a small path router (/live, /history, /nodes/NAME, /users, /audit) over one shared
// live store fed by the backend's live stream. Which pages exist for the signed-in role comes from
// /api/me; the backend enforces the same rule on every route, so this only avoids showing dead ends.
import * as api from './api.js';
import { LiveHistory, livePage } from './live.js';
import { historyPage } from './history.js';
import { nodePage } from './node.js';
import { usersPage } from './users.js';
import { auditPage } from './audit.js';
import { interceptLinks } from './nav.js';
import { el } from './format.js';

/** The live data every page shares: the latest snapshot, a few minutes of history, listeners. */
const store = {
  me: null,
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

const conn = document.getElementById('conn');
function setConn(state) {
  conn.textContent = state === 'live' ? 'live' : 'reconnecting…';
  conn.className = `conn ${state}`;
}

const main = document.getElementById('main');
let cleanup = null;
const ADMIN_PAGES = new Set(['history', 'users', 'audit']);

function notAuthorized() {
  main.replaceChildren(
    el('h1', { text: 'Not authorized' }),
    el('p', { text: 'This page is for Admins. Your role shows the live view only.' }),
    el('p', {}, el('a', { href: '/live', text: 'Go to the live view' })),
  );
}

function route() {
  if (cleanup) cleanup();
  cleanup = null;
  const parts = location.pathname.split('/').filter(Boolean);
  const params = new URLSearchParams(location.search);
  const page = parts[0] || 'live';
  for (const a of document.querySelectorAll('[data-nav]')) {
    a.classList.toggle('active', a.dataset.nav === page);
  }
  try {
    if (ADMIN_PAGES.has(page) && store.me.role !== 'admin') notAuthorized();
    else if (page === 'live') cleanup = livePage(main, store);
    else if (page === 'history') cleanup = historyPage(main, params);
    else if (page === 'users') cleanup = usersPage(main, store.me);
    else if (page === 'audit') cleanup = auditPage(main);
    else if (page === 'nodes' && parts[1]) cleanup = nodePage(main, store, decodeURIComponent(parts[1]));
    else main.replaceChildren(el('h1', { text: 'Not found' }), el('p', {}, el('a', { href: '/live', text: 'Back to the live view' })));
  } catch (e) {
    main.replaceChildren(el('p', { class: 'error', text: `This page failed: ${e.message}` }));
  }
}

/** The header: pages for this role, who is signed in, sign out; or the local-mode banner. */
function showIdentity(me) {
  for (const a of document.querySelectorAll('[data-nav]')) {
    a.hidden = ADMIN_PAGES.has(a.dataset.nav) && me.role !== 'admin';
  }
  const who = document.getElementById('who');
  if (!me.auth) {
    who.replaceChildren(el('span', { class: 'local', text: 'local mode', title: 'No sign-in is configured: dsmon serves this machine only and everyone is Admin.' }));
    document.getElementById('banner').hidden = false;
    return;
  }
  const out = el('button', { type: 'button', id: 'signout', text: 'Sign out' });
  out.addEventListener('click', async () => {
    try {
      await api.logout();
    } finally {
      location.assign('/auth/signed-out');
    }
  });
  who.replaceChildren(
    el('span', { class: 'email', id: 'me', text: me.email, title: me.name || '' }),
    el('span', { class: `role ${me.role}`, id: 'role', text: me.role === 'admin' ? 'Admin' : 'User' }),
    out,
  );
}

async function start() {
  try {
    store.me = await api.me();
  } catch (e) {
    if (e.status === 401) {
      location.assign(`/auth/login?next=${encodeURIComponent(location.pathname + location.search)}`);
      return;
    }
    main.replaceChildren(el('p', { class: 'error', text: `Cannot reach dsmon: ${e.message}` }));
    return;
  }
  showIdentity(store.me);
  api.live().then((s) => store.push(s), () => setConn('reconnecting'));
  api.subscribeLive((s) => store.push(s), setConn);
  interceptLinks(document.body);
  window.addEventListener('popstate', route);
  window.addEventListener('dsmon:navigate', route);
  route();
}

start();
