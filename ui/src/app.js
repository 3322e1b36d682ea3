// dsmon's pages: a tiny hash router (#/live, #/history, #/node/NAME) over one shared live store
// fed by the backend's live stream.
import * as api from './api.js';
import { LiveHistory, livePage } from './live.js';
import { historyPage } from './history.js';
import { nodePage } from './node.js';
import { el } from './format.js';

/** The live data every page shares: the latest snapshot, a few minutes of history, listeners. */
const store = {
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

api.live().then((s) => store.push(s), () => setConn('reconnecting'));
api.subscribeLive((s) => store.push(s), setConn);

const main = document.getElementById('main');
let cleanup = null;

function route() {
  if (cleanup) cleanup();
  cleanup = null;
  const hash = location.hash || '#/live';
  const [path, queryString] = hash.slice(1).split('?');
  const params = new URLSearchParams(queryString || '');
  const parts = path.split('/').filter(Boolean);
  const page = parts[0] || 'live';
  for (const a of document.querySelectorAll('[data-nav]')) {
    a.classList.toggle('active', a.dataset.nav === page);
  }
  try {
    if (page === 'live') cleanup = livePage(main, store);
    else if (page === 'history') cleanup = historyPage(main, params);
    else if (page === 'node' && parts[1]) cleanup = nodePage(main, store, decodeURIComponent(parts[1]));
    else main.replaceChildren(el('h1', { text: 'Not found' }), el('p', {}, el('a', { href: '#/live', text: 'Back to the live view' })));
  } catch (e) {
    main.replaceChildren(el('p', { class: 'error', text: `This page failed: ${e.message}` }));
  }
}

window.addEventListener('hashchange', route);
route();
