// Tiny DOM helpers. Everything from the API reaches the page as text nodes (never innerHTML),
// so a job input or payload cannot inject markup.

/**
 * Creates an element: `h('a', { href: '/x', class: 'y', onclick: fn }, 'text', child)`.
 * Attributes set to null/undefined/false are left out; `on*` functions become listeners.
 * @param {string} tag
 * @param {Record<string, unknown> | null} [attrs]
 * @param {...(Node | string | number | null | undefined | false | Array<Node | string>)} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** Like h(), for SVG elements. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** `2026-11-23T09:28:36.363Z` → `2026-11-23 09:28:36` (UTC), with the full value as tooltip. */
export function time(iso) {
  if (iso === null || iso === undefined) return h('span', { class: 'muted' }, '—');
  return h('time', { datetime: iso, title: iso }, iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, ''));
}

export function statusBadge(status) {
  return h('span', { class: `status status-${status}`, 'data-status': status }, status);
}

/** A progress bar for a fraction 0..1 (null → 0), with the percentage and message as text. */
export function progressBar(fraction, message) {
  const f = Math.max(0, Math.min(1, fraction ?? 0));
  const pct = Math.round(f * 100);
  return h(
    'div',
    { class: 'progress' },
    h('progress', { max: 1, value: f, 'aria-label': 'progress' }, `${pct}%`),
    h('span', { class: 'progress-text' }, `${pct}%`, message ? ` · ${message}` : ''),
  );
}

/** Pretty JSON in a <pre>. */
export function jsonBlock(value) {
  return h('pre', { class: 'json' }, JSON.stringify(value, null, 2));
}

/** Formats a number for tables: integers as is, others with up to 4 significant decimals. */
export function num(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v !== 'number') return String(v);
  if (Number.isInteger(v)) return v.toLocaleString('en-US');
  const abs = Math.abs(v);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e9)) return v.toExponential(3);
  return v.toLocaleString('en-US', { maximumFractionDigits: 4 });
}

/** Current path segments below /ui/, e.g. `/ui/jobs/job_1` → ['jobs', 'job_1']. */
export function routeSegments() {
  return location.pathname.replace(/^\/ui\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
}
