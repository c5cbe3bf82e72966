// How the UI shows an API error: the problem's title and detail (RFC 9457), its stable code,
// and the per-field messages of a validation problem.
import { ApiError } from './api.js';
import { h } from './dom.js';

/** @param {unknown} err */
export function problemView(err) {
  if (!(err instanceof ApiError)) {
    const message = err instanceof Error ? err.message : String(err);
    return h('div', { class: 'problem', role: 'alert' }, h('strong', { class: 'problem-title' }, 'Something went wrong in the page'), h('p', { class: 'problem-detail' }, message));
  }
  const p = err.problem;
  const errors = Array.isArray(p.errors) ? p.errors : [];
  return h(
    'div',
    { class: 'problem', role: 'alert', 'data-code': p.code ?? '', 'data-status': err.status },
    h('strong', { class: 'problem-title' }, p.title ?? `HTTP ${err.status}`),
    err.status > 0 ? h('span', { class: 'problem-status' }, ` ${err.status}${p.code ? ` · ${p.code}` : ''}`) : null,
    p.detail ? h('p', { class: 'problem-detail' }, p.detail) : null,
    errors.length > 0 ? h('ul', { class: 'problem-errors' }, errors.map((e) => h('li', null, `${e.in} ${e.field}: ${e.message}`))) : null,
    typeof p.retry_after_seconds === 'number' ? h('p', null, `Try again in ${p.retry_after_seconds} s.`) : null,
  );
}
