// The one module that talks to the backend. In a browser it uses fetch and EventSource against
// `dsmon serve`; in the desktop app (Tauri) the same functions call its commands and listen to its
// events. The backend checks the caller's role either way; the pages only reflect its answers.

/**
 * An error from the backend: its kind (the application layer's: not_signed_in, forbidden, ...)
 * and the HTTP status the pages check (401: not signed in, 403: not allowed). The server sends the
 * kind beside its status; the desktop commands send only the kind.
 */
export class ApiError extends Error {
  constructor(message, status, kind) {
    super(message);
    this.status = status;
    this.kind = kind;
  }
}

const TAURI = window.__TAURI__;
/** True inside the desktop app. */
export const desktop = Boolean(TAURI && TAURI.core);

// The error kinds as HTTP statuses: the same table as the server's `status_of` (dsmon-server).
const STATUS = {
  not_signed_in: 401, forbidden: 403, not_authorized: 403, bad_request: 400, not_found: 404,
  conflict: 409, too_many: 429, config: 503, unavailable: 502, database_unavailable: 503,
  internal: 500,
};

async function call(cmd, args) {
  try {
    return await TAURI.core.invoke(cmd, args);
  } catch (e) {
    const kind = e && e.kind ? e.kind : 'internal';
    throw new ApiError(e && e.message ? e.message : String(e), STATUS[kind] || 500, kind);
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
  if (!r.ok) throw new ApiError(body && body.error ? body.error : `HTTP ${r.status}`, r.status, body && body.kind);
  return body;
}

const getJSON = (path) => request(path);
const postJSON = (path, body) =>
  request(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });

/** Who is signed in: { email, name, role: 'admin' | 'user', auth: false when dsmon runs without sign-in }. */
export const me = () => (desktop ? call('me') : getJSON('/api/me'));

/** Ends the session. */
export const logout = () => (desktop ? call('sign_out') : postJSON('/auth/logout', {}));

/** Desktop: signs in through the system browser; resolves to me() once the browser came back. */
export const signIn = () => call('sign_in');

/** Everyone who has signed in (Admins only). */
export const users = () => (desktop ? call('users') : getJSON('/api/users'));

/** Changes a user: { role: 'admin' | 'user' | null } and/or { blocked: bool }. Returns the new list. */
export const changeUser = (email, change) =>
  desktop ? call('change_user', { email, change }) : postJSON(`/api/users/${encodeURIComponent(email)}`, change);

/** A page of the audit log, newest first: { entries, total, offset, limit }. */
export const audit = (offset, limit) =>
  desktop ? call('audit', { offset, limit }) : getJSON(`/api/audit?${query({ offset, limit })}`);

// ---- API tokens (the server's web UI only: the desktop app does not show the page) ----------

/** Every API token, newest first: { tokens: [{ id, name, role, created, created_by, expires, last_used, revoked }] }. */
export const tokens = () => getJSON('/api/tokens');

/** Creates a token: { name, role: 'user' | 'admin', expires: '90d' | RFC 3339 | null } -> the token with its `secret`, once. */
export const createToken = (t) => postJSON('/api/tokens', t);

/** Revokes a token now -> the token. */
export const revokeToken = (id) => del(`/api/tokens/${encodeURIComponent(id)}`);

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    for (const x of Array.isArray(v) ? v : [v]) q.append(k, String(x));
  }
  return q.toString();
}

/**
 * Every configured node's state and the link to its own Netdata dashboard (`dashboard`). The
 * desktop app has no such list: it resolves to [] (no links).
 */
export const nodes = () => (desktop ? Promise.resolve([]) : getJSON('/api/nodes'));

// ---- alerts (docs/alerts.md) ------------------------------------------------------------------
// The desktop app reaches the same use cases through its commands, one per route, named as the
// application layer's requests (dsmon_app::Request: alerts, alert_history, ..., test_notifier).

const del = (path) => request(path, { method: 'DELETE' });

/** Pending and firing alerts now: { alerts: [Alert] } (every signed-in role). */
export const alerts = () => (desktop ? call('alerts') : getJSON('/api/alerts'));

/** Firing and resolved events, newest first: { events } for { from, to, node, limit }. */
export const alertHistory = (p = {}) => {
  if (!desktop) return getJSON(`/api/alerts/history?${query(p)}`);
  const node = p.node === undefined || p.node === null ? [] : [].concat(p.node);
  return call('alert_history', { query: { from: p.from, to: p.to, limit: p.limit, node } });
};

/** The delivery log, newest first: { deliveries }. */
export const alertDeliveries = (limit) =>
  desktop ? call('alert_deliveries', { limit }) : getJSON(`/api/alerts/deliveries?${query({ limit })}`);

/** The alert rules, notifiers and maintenance windows: { rules, notifiers, maintenance }. */
export const alertConfig = () => (desktop ? call('alert_config') : getJSON('/api/alerts/config'));

/** Silences, active first, then recently expired: { silences }. */
export const silences = () => (desktop ? call('silences') : getJSON('/api/alerts/silences'));

/** Creates a silence: { nodes, rule, severity, expires: '2h' | RFC 3339, comment } -> Silence. */
export const createSilence = (silence) =>
  desktop ? call('create_silence', { silence }) : postJSON('/api/alerts/silences', silence);

/** Expires a silence now -> Silence. */
export const expireSilence = (id) =>
  desktop ? call('expire_silence', { id: Number(id) }) : del(`/api/alerts/silences/${encodeURIComponent(id)}`);

/** Acknowledges a firing alert until it resolves -> Alert. */
export const acknowledge = (rule, node) =>
  desktop ? call('acknowledge', { rule, node }) : postJSON('/api/alerts/ack', { rule, node });

/** Sends a test notification through a notifier -> Delivery. */
export const testNotifier = (name) =>
  desktop ? call('test_notifier', { name }) : postJSON(`/api/alerts/notifiers/${encodeURIComponent(name)}/test`, {});

/** The latest live snapshot. */
export const live = () => (desktop ? call('live') : getJSON('/api/live'));

/**
 * History buckets: { from, to, points, node: [names], tag: [tags], group: '1' } with from/to as
 * RFC 3339 or relative; `group` makes one line (average and peak) of the nodes selected.
 */
export const history = (p) => {
  if (!desktop) return getJSON(`/api/history?${query(p)}`);
  const node = p.node === undefined || p.node === null ? [] : [].concat(p.node);
  const tag = p.tag === undefined || p.tag === null ? [] : [].concat(p.tag);
  return call('history', {
    query: { from: p.from, to: p.to, points: p.points ? Number(p.points) : undefined, node, tag, group: p.group || undefined },
  });
};

/** Address of the raw rows as CSV for the same parameters (browser; the desktop app: saveHistoryCsv). */
export const historyCsvUrl = (p) =>
  desktop ? null : `/api/history.csv?${query({ from: p.from, to: p.to, node: p.node, tag: p.tag })}`;

/**
 * Desktop: saves the raw rows as CSV for the same parameters where the user chooses (a save
 * dialog). Resolves to the path written, or null when the dialog was cancelled.
 */
export const saveHistoryCsv = (p) => {
  const node = p.node === undefined || p.node === null ? [] : [].concat(p.node);
  const tag = p.tag === undefined || p.tag === null ? [] : [].concat(p.tag);
  return call('history_csv', { query: { from: p.from, to: p.to, node, tag } });
};

/**
 * Calls onSnapshot for every live snapshot and onStatus('live' | 'reconnecting') as the stream's
 * state changes. Returns a function that stops it.
 */
export function subscribeLive(onSnapshot, onStatus) {
  if (desktop) {
    const offs = [
      TAURI.event.listen('live', (e) => {
        onStatus('live');
        onSnapshot(e.payload);
      }),
      TAURI.event.listen('live-status', (e) => onStatus(e.payload)),
    ];
    onStatus('live');
    return () => offs.forEach((p) => p.then((off) => off()));
  }
  const es = new EventSource('/api/live/stream');
  es.addEventListener('snapshot', (e) => onSnapshot(JSON.parse(e.data)));
  es.onopen = () => onStatus('live');
  es.onerror = () => onStatus('reconnecting');
  return () => es.close();
}

// ---- desktop only ----------------------------------------------------------------------------

/** Calls f() whenever the desktop app's sign-in or backend changed (another window signed in). */
export function onSessionChange(f) {
  if (desktop) TAURI.event.listen('session', () => f());
}

/** Calls f(path) when the app's menu asks for a page (Settings). */
export function onNavigateRequest(f) {
  if (desktop) TAURI.event.listen('navigate', (e) => f(e.payload));
}

/** The Settings page's view of the configuration file: { path, settings, error }. */
export const settings = () => call('settings_get');

/** Validates and saves settings; the app restarts its collector or reconnects. */
export const saveSettings = (s) => call('settings_save', { settings: s });

export const openLiveWindow = () => call('open_live_window');

/** Preferences: { theme, last_range, notifications } (desktop: saved with the app; browser: localStorage). */
export async function prefs() {
  if (desktop) return call('prefs_get');
  try {
    return JSON.parse(localStorage.getItem('dsmon.prefs') || '{}');
  } catch {
    return {};
  }
}

export async function setPref(key, value) {
  if (desktop) return call('prefs_set', { key, value });
  const p = await prefs();
  p[key] = value;
  localStorage.setItem('dsmon.prefs', JSON.stringify(p));
  return null;
}
