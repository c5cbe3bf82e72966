// Inline SVG charts (no library): a histogram of numeric bins and a bar chart of top values.
// Sizes are in viewBox units; CSS scales the SVG to its container.
import { num, s } from './dom.js';

const W = 320;
const H = 160;
const PAD = { top: 8, right: 8, bottom: 28, left: 36 };

/**
 * @param {Array<{lower: number, upper: number, count: number}>} bins
 * @param {string} title accessible name
 */
export function histogramChart(bins, title) {
  const max = Math.max(1, ...bins.map((b) => b.count));
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const bw = plotW / Math.max(1, bins.length);
  const bars = bins.map((b, i) => {
    const bh = (b.count / max) * plotH;
    return s(
      'rect',
      { class: 'bar', x: PAD.left + i * bw + 1, y: PAD.top + plotH - bh, width: Math.max(1, bw - 2), height: bh, 'data-count': b.count },
      s('title', null, `${num(b.lower)} – ${num(b.upper)}: ${num(b.count)}`),
    );
  });
  const first = bins[0];
  const last = bins[bins.length - 1];
  return s(
    'svg',
    { class: 'chart histogram', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title },
    s('title', null, title),
    axes(plotW, plotH, max),
    bars,
    first ? s('text', { class: 'tick', x: PAD.left, y: H - 10, 'text-anchor': 'start' }, num(first.lower)) : null,
    last ? s('text', { class: 'tick', x: W - PAD.right, y: H - 10, 'text-anchor': 'end' }, num(last.upper)) : null,
  );
}

/**
 * Horizontal bars, one per value, longest first as given.
 * @param {Array<{value: unknown, count: number}>} top
 * @param {string} title
 */
export function topValuesChart(top, title) {
  const rowH = 18;
  const labelW = 110;
  const height = Math.max(rowH, top.length * rowH) + 4;
  const max = Math.max(1, ...top.map((t) => t.count));
  const barMax = W - labelW - 56;
  const rows = top.map((t, i) => {
    const y = 2 + i * rowH;
    const label = String(t.value);
    const short = label.length > 16 ? `${label.slice(0, 15)}…` : label;
    const bw = Math.max(1, (t.count / max) * barMax);
    return s(
      'g',
      { class: 'top-row' },
      s('title', null, `${label}: ${num(t.count)}`),
      s('text', { class: 'label', x: labelW - 6, y: y + rowH - 5, 'text-anchor': 'end' }, short),
      s('rect', { class: 'bar', x: labelW, y: y + 2, width: bw, height: rowH - 4, 'data-count': t.count }),
      s('text', { class: 'value', x: labelW + bw + 4, y: y + rowH - 5 }, num(t.count)),
    );
  });
  return s('svg', { class: 'chart top-values', viewBox: `0 0 ${W} ${height}`, role: 'img', 'aria-label': title }, s('title', null, title), rows);
}

function axes(plotW, plotH, max) {
  const x0 = PAD.left;
  const y0 = PAD.top + plotH;
  return s(
    'g',
    { class: 'axes' },
    s('line', { x1: x0, y1: PAD.top, x2: x0, y2: y0 }),
    s('line', { x1: x0, y1: y0, x2: x0 + plotW, y2: y0 }),
    s('text', { class: 'tick', x: x0 - 4, y: PAD.top + 8, 'text-anchor': 'end' }, num(max)),
    s('text', { class: 'tick', x: x0 - 4, y: y0, 'text-anchor': 'end' }, '0'),
  );
}
