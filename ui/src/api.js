// The one module that talks to the backend. In a browser it uses fetch and EventSource against
// `dsmon serve`; the desktop app will provide the same functions through Tauri commands and events.

async function getJSON(path) {
  const r = await fetch(path, { headers: { Accept: 'application/json' } });
  let body = null;
  try {
    body = await r.json();
  } catch {
    // not JSON: reported below by status
  }
  if (!r.ok) throw new Error(body && body.error ? body.error : `HTTP ${r.status}`);
  return body;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    for (const x of Array.isArray(v) ? v : [v]) q.append(k, String(x));
  }
  return q.toString();
}

/** Every configured node's state. */
export const nodes = () => getJSON('/api/nodes');

/** The latest live snapshot. */
export const live = () => getJSON('/api/live');

/** History buckets: { from, to, points, node: [names] } with from/to as RFC 3339 or relative. */
export const history = (p) => getJSON(`/api/history?${query(p)}`);

/** Address of the raw rows as CSV for the same parameters. */
export const historyCsvUrl = (p) => `/api/history.csv?${query({ from: p.from, to: p.to, node: p.node })}`;

/**
 * Calls onSnapshot for every live snapshot and onStatus('live' | 'reconnecting') as the stream's
 * state changes. Returns a function that stops it.
 */
export function subscribeLive(onSnapshot, onStatus) {
  const es = new EventSource('/api/live/stream');
  es.addEventListener('snapshot', (e) => onSnapshot(JSON.parse(e.data)));
  es.onopen = () => onStatus('live');
  es.onerror = () => onStatus('reconnecting');
  return () => es.close();
}
