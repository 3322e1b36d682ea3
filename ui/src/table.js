// The live page's table view: one row per node, keyed by the node's name. An update writes only
// the cells whose text changed, and a new order (sort, filter) moves only the rows that are out of
// place (the rows outside a longest increasing run of their old positions), so 1000 nodes every
// 2 s cost a few milliseconds.
import { el, num, rate } from './format.js';

/** State order of the default sort: down first, then pending (no data yet), then up. */
const STATE_RANK = { down: 0, pending: 1, up: 2 };

/**
 * The columns: `key` (the URL's sort value), header label, how a node sorts (`value`: a string or
 * number, null sorts last either way), and whether the first click sorts descending (numbers:
 * highest first).
 */
export const COLUMNS = [
  { key: 'name', label: 'Name' }, // sorted by each row's rank (below)
  { key: 'state', label: 'State', value: (n) => STATE_RANK[n.state] ?? 1 },
  { key: 'cpu', label: 'CPU', num: true, metric: 'cpu_pct' },
  { key: 'mem', label: 'Memory', num: true, metric: 'mem_pct' },
  { key: 'disk', label: 'Disk', num: true, metric: 'disk_pct' },
  { key: 'in', label: 'Net in', num: true, metric: 'net_in_kbps' },
  { key: 'out', label: 'Net out', num: true, metric: 'net_out_kbps' },
  { key: 'seen', label: 'Last seen', num: true, value: (n) => n.last_seen ?? null },
  { key: 'tags', label: 'Tags', value: (n) => (n.tags && n.tags.length ? n.tags.join(', ') : null) },
];
for (const c of COLUMNS) {
  if (c.metric) c.value = (n) => (n.metrics ? n.metrics[c.metric] ?? null : null);
}
export const SORT_KEYS = new Set(COLUMNS.map((c) => c.key));
/** The first click on a column: numbers highest first, text A to Z. */
export const firstDir = (key) => (COLUMNS.find((c) => c.key === key)?.num ? 'desc' : 'asc');

// One formatter, made once: toLocaleTimeString makes a new one per call, which costs more than
// the rest of an update for 1000 rows.
const clock = new Intl.DateTimeFormat([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
// Names and tags in the order people expect: web2 before web10, case aside.
const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });
const pct = (v) => (v === null || v === undefined ? '–' : `${num(v)} %`);

/**
 * "now" while the node answered within the last two live intervals, else the time of its last
 * answer ("–": never): an up node's cell does not change every update.
 */
function seenText(n, ts, intervalMs) {
  if (n.last_seen === null || n.last_seen === undefined) return '–';
  if (n.state === 'up' && ts - n.last_seen <= (2 * intervalMs) / 1000) return 'now';
  return clock.format(new Date(n.last_seen * 1000));
}

/** The texts of a node's cells after the name, in COLUMNS order. */
function cellTexts(n, ts, intervalMs) {
  const m = n.metrics;
  return [
    n.state,
    pct(m ? m.cpu_pct : null),
    pct(m ? m.mem_pct : null),
    pct(m ? m.disk_pct : null),
    rate(m ? m.net_in_kbps : null),
    rate(m ? m.net_out_kbps : null),
    seenText(n, ts, intervalMs),
    n.tags && n.tags.length ? n.tags.join(', ') : '',
  ];
}

/**
 * Indices (into `seq`) of a longest strictly increasing subsequence of `seq`, ignoring entries
 * below 0 (rows not in the table yet): the rows that can stay where they are.
 */
function longestRun(seq) {
  const tails = []; // tails[k]: index in seq of the smallest tail of a run of length k + 1
  const prev = new Array(seq.length).fill(-1);
  for (let i = 0; i < seq.length; i++) {
    const v = seq[i];
    if (v < 0) continue;
    let lo = 0;
    let hi = tails.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (seq[tails[mid]] < v) lo = mid + 1;
      else hi = mid;
    }
    if (lo > 0) prev[i] = tails[lo - 1];
    tails[lo] = i;
  }
  const keep = new Set();
  for (let i = tails.length ? tails[tails.length - 1] : -1; i >= 0; i = prev[i]) keep.add(i);
  return keep;
}

/**
 * The table. `update(snapshot, firingNodes)` patches the rows' cells; `show(filter, sort)` sets which
 * rows are shown (`filter(node)`) and their order (`sort`: { key, dir }); `onSort(key)` is called
 * when a header's button is pressed. `stats()`: what the last update and order change did.
 */
export function nodeTable({ onSort }) {
  const heads = new Map();
  const headRow = el('tr', { role: 'row' }, COLUMNS.map((c) => {
    const arrow = el('span', { class: 'arrow', 'aria-hidden': 'true' });
    const button = el('button', { type: 'button', class: 'sort', 'data-sort': c.key, text: c.label }, arrow);
    button.addEventListener('click', () => onSort(c.key));
    const th = el('th', { scope: 'col', role: 'columnheader', 'data-col': c.key, class: c.num ? 'num' : null }, button);
    heads.set(c.key, { th, arrow });
    return th;
  }));
  // The rows are laid out as grids (style.css) so that the browser can skip the rows out of view
  // (content-visibility), which a table layout cannot; the roles say "table" all the same, as
  // browsers may drop a table's semantics when its parts are not displayed as table parts.
  const tbody = el('tbody', { role: 'rowgroup' });
  const table = el('table', { class: 'nodes-table-live', id: 'node-table', role: 'table', 'aria-label': 'nodes' },
    el('thead', { role: 'rowgroup' }, headRow), tbody);
  const wrap = el('div', { class: 'table-wrap' }, table);

  /** name -> { tr, cells (after the name), texts, node, alerting } */
  const rows = new Map();
  let generation = 0;
  let order = []; // the rows shown, in order
  let filter = () => true;
  let sort = { key: 'state', dir: 'asc' };
  let last = { cells: 0, rows: 0, moved: 0 };
  let dirty = false; // rows came or went since the last arrange

  function newRow(n) {
    const cells = COLUMNS.slice(1).map((c) => el('td', { role: 'cell', class: c.key === 'state' ? 'state' : c.num ? 'num' : null }));
    const tr = el(
      'tr',
      { role: 'row', 'data-node': n.name },
      el('th', { scope: 'row', role: 'rowheader' }, el('a', { href: `/nodes/${encodeURIComponent(n.name)}`, text: n.name })),
      cells,
    );
    return { tr, cells, texts: cells.map(() => null), node: n, state: null, alerting: false, gen: 0, rank: 0 };
  }

  function update(snap, firing) {
    generation++;
    let cellsChanged = 0;
    let rowsChanged = 0;
    let members = false;
    for (const n of snap.nodes) {
      let r = rows.get(n.name);
      if (!r) {
        r = newRow(n);
        rows.set(n.name, r);
        members = true;
      }
      r.gen = generation;
      r.node = n;
      const texts = cellTexts(n, snap.ts, snap.interval_ms);
      let changed = false;
      for (let i = 0; i < texts.length; i++) {
        if (r.texts[i] !== texts[i]) {
          r.cells[i].textContent = texts[i];
          r.texts[i] = texts[i];
          cellsChanged++;
          changed = true;
        }
      }
      const alerting = firing.has(n.name);
      if (r.state !== n.state || r.alerting !== alerting) {
        r.tr.className = `state-${n.state}${alerting ? ' alerting' : ''}`;
        r.state = n.state;
        r.alerting = alerting;
        changed = true;
      }
      if (changed) rowsChanged++;
    }
    for (const [name, r] of rows) {
      if (r.gen !== generation) {
        r.tr.remove();
        rows.delete(name);
        members = true;
      }
    }
    last = { cells: cellsChanged, rows: rowsChanged, moved: 0 };
    if (members) dirty = true;
  }

  /** Orders rows by the sorted column, then by name (its rank: web2 before web10). */
  function comparator() {
    const col = COLUMNS.find((c) => c.key === sort.key) || COLUMNS[1];
    const sign = sort.dir === 'desc' ? -1 : 1;
    if (col.key === 'name') return (x, y) => sign * (x.rank - y.rank);
    const text = !col.num && col.key !== 'state';
    return (x, y) => {
      const vx = col.value(x.node);
      const vy = col.value(y.node);
      if (vx !== vy) {
        if (vx === null) return 1; // no value: last, whichever the direction
        if (vy === null) return -1;
        const c = text ? collator.compare(vx, vy) : vx < vy ? -1 : vx > vy ? 1 : 0;
        if (c) return sign * c;
      }
      return x.rank - y.rank;
    };
  }

  /** Puts the shown rows in order, moving as few as possible. */
  function arrange(force) {
    if (dirty) {
      // Rows came or went: rank the names again (a collator is too slow to run at every update).
      const byName = [...rows.values()].sort((a, b) => collator.compare(a.node.name, b.node.name));
      byName.forEach((r, i) => {
        r.rank = i;
      });
    }
    dirty = false;
    const want = [];
    for (const r of rows.values()) if (filter(r.node)) want.push(r);
    want.sort(comparator());
    if (!force && want.length === order.length && want.every((r, i) => r === order[i])) return;
    const wanted = new Set(want.map((r) => r.tr));
    for (const r of order) if (!wanted.has(r.tr)) r.tr.remove();
    const pos = new Map();
    let i = 0;
    for (const tr of tbody.children) pos.set(tr, i++);
    const keep = longestRun(want.map((r) => (pos.has(r.tr) ? pos.get(r.tr) : -1)));
    let next = null;
    let moved = 0;
    for (let k = want.length - 1; k >= 0; k--) {
      const tr = want[k].tr;
      if (!keep.has(k)) {
        tbody.insertBefore(tr, next);
        moved++;
      }
      next = tr;
    }
    order = want;
    last.moved = moved;
  }

  function show(newFilter, newSort) {
    filter = newFilter;
    sort = newSort;
    for (const c of COLUMNS) {
      const h = heads.get(c.key);
      const sorted = c.key === sort.key;
      if (sorted) h.th.setAttribute('aria-sort', sort.dir === 'desc' ? 'descending' : 'ascending');
      else h.th.removeAttribute('aria-sort');
      h.arrow.textContent = sorted ? (sort.dir === 'desc' ? ' ▼' : ' ▲') : '';
    }
    arrange(dirty);
  }

  return { element: wrap, table, update, show, shown: () => order.length, stats: () => last };
}
