// Formatting shared by the pages.

export const METRICS = [
  { key: 'cpu_pct', label: 'CPU', unit: '%', digits: 1 },
  { key: 'mem_pct', label: 'Memory', unit: '%', digits: 1 },
  { key: 'disk_pct', label: 'Disk', unit: '%', digits: 1 },
  { key: 'net_in_kbps', label: 'Network in', unit: 'kbit/s', digits: 0 },
  { key: 'net_out_kbps', label: 'Network out', unit: 'kbit/s', digits: 0 },
];

export function num(v, digits = 1) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (Math.abs(v) >= 10000) return `${(v / 1000).toFixed(1)}k`;
  return v.toFixed(digits);
}

export function rate(kbps) {
  if (kbps === null || kbps === undefined) return '–';
  if (kbps >= 1e6) return `${(kbps / 1e6).toFixed(2)} Gbit/s`;
  if (kbps >= 1e3) return `${(kbps / 1e3).toFixed(2)} Mbit/s`;
  return `${kbps.toFixed(0)} kbit/s`;
}

export function time(unix) {
  return new Date(unix * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function dateTime(unix) {
  return new Date(unix * 1000).toLocaleString([], {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
  });
}

/** A moment to the second, with its date: `Nov 30, 10:02:03`. */
export function stamp(unix) {
  return new Date(unix * 1000).toLocaleString([], {
    month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

export function duration(secs) {
  if (secs < 120) return `${Math.round(secs)} s`;
  if (secs < 7200) return `${Math.round(secs / 60)} min`;
  if (secs < 172800) return `${Math.round(secs / 3600)} h`;
  return `${Math.round(secs / 86400)} d`;
}

/** Creates an element: el('div', { class: 'x', text: 'y' }, ...children). */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c);
  return e;
}
