// uPlot charts with dsmon's look: colours from the page's CSS (light or dark), width from the
// container (charts resize with it), gaps where values are null.
import uPlot from './vendor/uPlot.esm.js';

// Every colour is at least 3:1 against the cards in both themes (WCAG 1.4.11 for graphics).
const PALETTE = ['#2563eb', '#16a34a', '#dc2626', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#65a30d', '#ea580c', '#6366f1'];

export const seriesColor = (i) => PALETTE[i % PALETTE.length];

/**
 * The colour a palette variable stands for in the current theme, as rgb()/rgba() for the canvas.
 * The variables hold light-dark() pairs, which only an element's computed colour resolves.
 */
function cssColor(name) {
  const probe = document.createElement('span');
  probe.hidden = true;
  probe.style.color = `var(${name})`; // set through the CSSOM, which the CSP allows
  document.body.append(probe);
  const color = getComputedStyle(probe).color;
  probe.remove();
  return color;
}

/**
 * uPlot's points.filter: the indices of the values that stand alone (null or the edge on both
 * sides), which a line cannot draw, so that a single logged row shows as a dot. When uPlot shows
 * every point anyway (`show`, few points on a wide chart) it needs no list.
 */
export function isolatedPoints(u, seriesIdx, show) {
  if (show) return null;
  const ys = u.data[seriesIdx];
  const none = (v) => v === null || v === undefined;
  const out = [];
  for (let i = 0; i < ys.length; i++) {
    if (!none(ys[i]) && (i === 0 || none(ys[i - 1])) && (i === ys.length - 1 || none(ys[i + 1]))) out.push(i);
  }
  return out.length ? out : null;
}

// Whole-second steps for the live charts (uPlot would otherwise tick a few seconds in fractions).
const LIVE_INCRS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600];
const clock = (v) => new Date(v * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });

function axes(unit, compact, live) {
  const stroke = cssColor('--muted');
  const grid = { stroke: cssColor('--grid'), width: 1 };
  const x = { stroke, grid, ticks: grid, show: !compact };
  if (live) {
    x.incrs = LIVE_INCRS;
    x.values = (u, vals) => vals.map(clock);
    x.space = 80;
  }
  return [
    x,
    {
      stroke, grid, ticks: grid, show: !compact, size: 56,
      values: (u, vals) => vals.map((v) => (v >= 10000 ? `${v / 1000}k` : `${v}`) + (unit === '%' ? '%' : '')),
    },
  ];
}

/** `rgb(r, g, b)` as `rgba(r, g, b, a)`. */
const withAlpha = (rgb, a) => rgb.replace(/^rgba?\(([^,]+),([^,]+),([^,)]+).*$/, `rgba($1,$2,$3, ${a})`);

/**
 * A uPlot plugin that marks alert spans: a shaded band from firing to resolved, a solid line where
 * it fired (with the rule's name at the top), a dashed one where it resolved; hovering a band names
 * its alerts. marks: [{ from, to, resolved, severity, label, title }] (times in Unix seconds).
 */
function alertMarks(marks) {
  const colors = { critical: cssColor('--down'), warning: cssColor('--pending') };
  let tip = null;
  return {
    hooks: {
      init: [
        (u) => {
          tip = document.createElement('div');
          tip.className = 'mark-tip';
          tip.hidden = true;
          u.over.append(tip);
        },
      ],
      draw: [
        (u) => {
          const { ctx } = u;
          const { left, top, width, height } = u.bbox;
          const px = uPlot.pxRatio || 1;
          ctx.save();
          ctx.beginPath();
          ctx.rect(left, top, width, height);
          ctx.clip();
          ctx.font = `${11 * px}px system-ui, sans-serif`;
          ctx.textBaseline = 'top';
          marks.forEach((m, i) => {
            const color = colors[m.severity] || colors.warning;
            const x0 = u.valToPos(m.from, 'x', true);
            const x1 = u.valToPos(m.to, 'x', true);
            ctx.fillStyle = withAlpha(color, 0.12);
            ctx.fillRect(x0, top, Math.max(px, x1 - x0), height);
            ctx.strokeStyle = color;
            ctx.lineWidth = 1.5 * px;
            ctx.setLineDash([]);
            ctx.beginPath();
            ctx.moveTo(x0, top);
            ctx.lineTo(x0, top + height);
            ctx.stroke();
            if (m.resolved) {
              ctx.setLineDash([4 * px, 3 * px]);
              ctx.beginPath();
              ctx.moveTo(x1, top);
              ctx.lineTo(x1, top + height);
              ctx.stroke();
            }
            // The rule's name beside its line, on one of three rows so that neighbours do not
            // overprint, and left of the line where it would run off the plot.
            ctx.fillStyle = color;
            const w = ctx.measureText(m.label).width;
            const x = x0 + 3 * px + w > left + width ? x0 - 3 * px - w : x0 + 3 * px;
            ctx.fillText(m.label, Math.max(left, x), top + (2 + 13 * (i % 3)) * px);
          });
          ctx.restore();
        },
      ],
      setCursor: [
        (u) => {
          const x = u.cursor.left;
          const at = x === null || x === undefined || x < 0 ? null : u.posToVal(x, 'x');
          const hits = at === null ? [] : marks.filter((m) => at >= m.from && at <= m.to);
          tip.hidden = hits.length === 0;
          if (!hits.length) return;
          tip.textContent = hits.map((m) => m.title).join('\n');
          tip.style.left = `${Math.min(x + 8, Math.max(0, u.over.clientWidth - tip.offsetWidth))}px`;
        },
      ],
    },
  };
}

/** The x scale: the data's times, stretched to cover opts.stretch ([from, to]) if given. */
function xScale(opts) {
  if (!opts.stretch) return { time: true };
  const [from, to] = opts.stretch;
  return {
    time: true,
    range: (u, min, max) => {
      const a = min === null ? from : Math.min(min, from);
      const b = max === null ? to : Math.max(max, to);
      return a < b ? [a, b] : [a - 60, b + 60];
    },
  };
}

/**
 * A chart of time series in `container`.
 * opts: { names: [series label], unit, height, compact, live (clock-time axis), zoom: (from, to) => void,
 *         range: [min, max], marks: alert spans (see alertMarks), stretch: [from, to] that the
 *         x axis covers at least (so that marks outside the data still show) }
 * data: [times, ...one array per series]
 */
export function lineChart(container, data, opts) {
  const series = [{}].concat(
    opts.names.map((name, i) => ({
      label: name,
      stroke: opts.colors ? opts.colors[i] : seriesColor(i),
      width: opts.widths ? opts.widths[i] : 1.5,
      dash: opts.dashes ? opts.dashes[i] : undefined,
      // Gaps stay gaps; a value standing alone between them is drawn as a dot (a line needs two).
      spanGaps: false,
      points: { filter: isolatedPoints, size: 6, fill: opts.colors ? opts.colors[i] : seriesColor(i) },
      value: (u, v) => (v === null || v === undefined ? '–' : `${v.toFixed(1)} ${opts.unit}`),
    })),
  );
  const width = () => Math.max(200, container.clientWidth);
  const u = new uPlot(
    {
      width: width(),
      height: opts.height || 200,
      series,
      axes: axes(opts.unit, opts.compact, opts.live),
      legend: { show: !opts.compact },
      cursor: opts.zoom
        ? { drag: { x: true, y: false, setScale: false } }
        : { drag: { x: false, y: false }, show: !opts.compact },
      scales: { x: xScale(opts), y: opts.range ? { range: opts.range } : {} },
      plugins: opts.marks && opts.marks.length ? [alertMarks(opts.marks)] : [],
      hooks: opts.zoom
        ? {
            setSelect: [
              (chart) => {
                const { left, width: w } = chart.select;
                if (w < 5) return;
                const from = chart.posToVal(left, 'x');
                const to = chart.posToVal(left + w, 'x');
                chart.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
                opts.zoom(Math.floor(from), Math.ceil(to));
              },
            ],
          }
        : {},
    },
    data,
    container,
  );
  const ro = new ResizeObserver(() => u.setSize({ width: width(), height: opts.height || 200 }));
  ro.observe(container);
  return {
    plot: u,
    setData: (d) => u.setData(d),
    destroy: () => {
      ro.disconnect();
      u.destroy();
    },
  };
}
