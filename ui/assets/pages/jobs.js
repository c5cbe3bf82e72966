// Job list: filters (status, analyzer), cursor paging, statuses kept live by the org's event
// stream (one connection for every job: a stream per job would use up the browser's six
// connections per server): each event reloads the current page, at most every RELOAD_MS.
// While the stream is not live (connecting, refused, e.g. 429) the page polls every POLL_MS.
import { api, poll, query } from '../api.js';
import { h, progressBar, replace, statusBadge, time } from '../dom.js';
import { problemView } from '../problem.js';
import { followOrgEvents } from '../orgStream.js';

const STATUSES = ['queued', 'running', 'completed', 'failed', 'canceled'];
const PAGE_SIZE = 25;
const POLL_MS = 2000;
const RELOAD_MS = 250;

export async function renderJobs(root, ctx) {
  const { params, config } = ctx;
  const status = params.get('status') ?? '';
  const analyzer = params.get('analyzer') ?? '';
  const cursor = params.get('cursor') ?? '';

  const select = (name, label, values, current) =>
    h(
      'label',
      null,
      `${label} `,
      h('select', { name, id: `filter-${name}` }, h('option', { value: '' }, 'any'), values.map((v) => h('option', { value: v, selected: v === current }, v))),
    );
  const analyzers = [...new Set([...config.analyzers, ...(analyzer ? [analyzer] : [])])];
  const filters = h(
    'form',
    { class: 'filters', method: 'get', action: '/ui/jobs', id: 'job-filters' },
    select('status', 'Status', STATUSES, status),
    select('analyzer', 'Analyzer', analyzers, analyzer),
    h('button', { type: 'submit' }, 'Filter'),
    status || analyzer ? h('a', { href: '/ui/jobs' }, 'clear') : null,
  );
  const problem = h('div');
  const tbody = h('tbody');
  const table = h(
    'table',
    { class: 'jobs', id: 'jobs-table' },
    h('thead', null, h('tr', null, ['Job', 'Analyzer', 'Status', 'Progress', 'Attempt', 'Created', 'Finished'].map((c) => h('th', { scope: 'col' }, c)))),
    tbody,
  );
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' });
  const live = h('p', { class: 'muted live', id: 'jobs-live' });
  replace(root, h('div', { class: 'page-head' }, h('h1', null, 'Jobs'), h('a', { class: 'button', href: '/ui/submit' }, 'Submit a job')), filters, problem, table, pager, live);

  const base = { status: status || undefined, analyzer: analyzer || undefined };
  const load = async () => {
    try {
      const page = await api(`/analyze/jobs${query({ ...base, cursor: cursor || undefined, limit: PAGE_SIZE })}`);
      replace(problem);
      renderRows(tbody, page.jobs);
      replace(
        pager,
        cursor ? h('a', { href: `/ui/jobs${query(base)}`, id: 'page-first' }, '« Newest') : null,
        page.next_cursor ? h('a', { href: `/ui/jobs${query({ ...base, cursor: page.next_cursor })}`, id: 'page-older' }, 'Older »') : null,
      );
      showLive();
      return null;
    } catch (e) {
      replace(problem, problemView(e));
      return e;
    }
  };
  let streaming = false;
  let loadedAt = null;
  const showLive = (fresh = true) => {
    if (fresh) loadedAt = new Date();
    const at = loadedAt ? `Updated ${loadedAt.toLocaleTimeString()} · ` : '';
    live.dataset.stream = streaming ? 'live' : 'off';
    live.textContent = streaming ? `${at}live` : `${at}refreshes every ${POLL_MS / 1000} s`;
  };
  await load();
  let reloadTimer = null;
  followOrgEvents({
    onEvent: () => {
      reloadTimer ??= setTimeout(() => {
        reloadTimer = null;
        void load();
      }, RELOAD_MS);
    },
    onState: (state) => {
      const was = streaming;
      streaming = state === 'live';
      showLive(false);
      // Back live after a gap: what changed meanwhile is not replayed into the list; reload it.
      if (streaming && !was && loadedAt) void load();
    },
  });
  poll(() => (streaming ? Promise.resolve(null) : load()), POLL_MS);
}

function renderRows(tbody, jobs) {
  if (jobs.length === 0) {
    replace(tbody, h('tr', null, h('td', { colspan: 7, class: 'empty' }, 'No jobs yet.')));
    return;
  }
  replace(
    tbody,
    jobs.map((j) =>
      h(
        'tr',
        { 'data-job-id': j.job_id },
        h('td', null, h('a', { href: `/ui/jobs/${encodeURIComponent(j.job_id)}`, class: 'mono' }, j.job_id)),
        h('td', null, j.analyzer),
        h('td', null, statusBadge(j.status)),
        h('td', null, progressBar(j.status === 'completed' ? 1 : j.progress?.fraction, j.progress?.message)),
        h('td', null, `${j.attempt}/${j.max_attempts}`),
        h('td', null, time(j.created_at)),
        h('td', null, time(j.finished_at)),
      ),
    ),
  );
}
