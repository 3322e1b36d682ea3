// The one module that talks to the backend. In a browser it uses fetch and EventSource against
// `dsmon serve`; the desktop app will provide the same functions through Tauri commands and events.

/** An error from the backend, with its HTTP status (401: not signed in, 403: not allowed). */
export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

async function request(path, init = {}) {
  const r = await fetch(path, { ...init, headers: { Accept: 'application/json', ...(init.headers || {}) } });
  let body = null;
  try {
    body = await r.json();
  } catch {
    // not JSON: reported below by status
  }
  if (r.status === 401 && path !== '/api/me') {
    // The session ended (expired, signed out elsewhere, blocked): sign in again and come back.
    location.assign(`/auth/login?next=${encodeURIComponent(location.pathname + location.search)}`);
  }
  if (!r.ok) throw new ApiError(body && body.error ? body.error : `HTTP ${r.status}`, r.status);
  return body;
}

const getJSON = (path) => request(path);
const postJSON = (path, body) =>
  request(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });

/** Who is signed in: { email, name, role: 'admin' | 'user', auth: false when dsmon runs without sign-in }. */
export const me = () => getJSON('/api/me');

/** Ends the session. */
export const logout = () => postJSON('/auth/logout', {});

/** Everyone who has signed in (Admins only). */
export const users = () => getJSON('/api/users');

/** Changes a user: { role: 'admin' | 'user' | null } and/or { blocked: bool }. Returns the new list. */
export const changeUser = (email, change) => postJSON(`/api/users/${encodeURIComponent(email)}`, change);

/** A page of the audit log, newest first: { entries, total, offset, limit }. */
export const audit = (offset, limit) => getJSON(`/api/audit?${query({ offset, limit })}`);

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
