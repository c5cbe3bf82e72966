// Result permalink page: /ui/results/{result_id}[?view=latest]. A dataset profile is shown as
// tables and charts; any other payload as formatted JSON.
import { api, query, seg } from '../api.js';
import { h, jsonBlock, replace, statusBadge, time } from '../dom.js';
import { isProfile, profileFull } from '../profile.js';
import { problemView } from '../problem.js';

export async function renderResult(root, ctx, resultId) {
  const view = ctx.params.get('view') === 'latest' ? 'latest' : 'exact';
  const here = `/ui/results/${encodeURIComponent(resultId)}`;
  const switcher = h(
    'nav',
    { class: 'tabs', 'aria-label': 'View' },
    h('a', { href: here, 'aria-current': view === 'exact' ? 'page' : null }, 'This result'),
    h('a', { href: `${here}${query({ view: 'latest' })}`, 'aria-current': view === 'latest' ? 'page' : null, id: 'view-latest' }, 'Latest of its job'),
  );
  replace(root, h('h1', null, 'Result ', h('span', { class: 'mono' }, resultId)), switcher, h('p', { class: 'muted' }, 'loading…'));
  let r;
  try {
    r = await api(`/analyze/results/${seg(resultId)}${query({ view })}`);
  } catch (e) {
    replace(root, h('h1', null, 'Result ', h('span', { class: 'mono' }, resultId)), switcher, problemView(e));
    return;
  }
  const resolvedElsewhere = r.result_id !== r.requested_result_id;
  replace(
    root,
    h('h1', null, 'Result ', h('span', { class: 'mono' }, r.result_id)),
    switcher,
    resolvedElsewhere ? h('p', { class: 'note' }, 'Resolved from ', h('a', { href: `/ui/results/${encodeURIComponent(r.requested_result_id)}`, class: 'mono' }, r.requested_result_id), ' to the newest result of its job.') : null,
    h(
      'section',
      { class: 'card' },
      h(
        'dl',
        { class: 'facts' },
        h('dt', null, 'Job'), h('dd', null, h('a', { href: `/ui/jobs/${encodeURIComponent(r.job_id)}`, class: 'mono', id: 'result-job' }, r.job_id), ' ', statusBadge(r.job_status)),
        h('dt', null, 'Kind'), h('dd', { id: 'result-kind' }, r.kind, r.chunk_key ? ` · ${r.chunk_key}` : ''),
        h('dt', null, 'Sequence'), h('dd', null, String(r.seq)),
        h('dt', null, 'Created'), h('dd', null, time(r.created_at)),
        h('dt', null, 'API'), h('dd', null, h('code', null, `GET /analyze/results/${r.result_id}`)),
      ),
    ),
    isProfile(r.payload) ? profileFull(r.payload) : h('section', { class: 'card' }, h('h2', null, 'Payload'), jsonBlock(r.payload)),
  );
}
