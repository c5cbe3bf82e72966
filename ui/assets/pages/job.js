// Job detail: status, progress, event timeline and partial snapshots, all live from the job's
// event stream (replayed from the first event, then followed); cancel; links to results.
import { api, seg } from '../api.js';
import { h, jsonBlock, progressBar, replace, statusBadge, time } from '../dom.js';
import { isProfile, profileSummary } from '../profile.js';
import { problemView } from '../problem.js';
import { followStream } from '../sse.js';

const TERMINAL = new Set(['completed', 'failed', 'canceled']);

export async function renderJob(root, _ctx, jobId) {
  const path = `/analyze/jobs/${seg(jobId)}`;
  let job;
  try {
    job = await api(path);
  } catch (e) {
    replace(root, h('h1', null, 'Job'), problemView(e), h('p', null, h('a', { href: '/ui/jobs' }, '« All jobs')));
    return;
  }

  const summary = h('section', { class: 'card', id: 'job-summary' });
  const actionProblem = h('div', { id: 'action-problem' });
  const streamState = h('span', { class: 'stream-state', id: 'stream-state' }, 'connecting…');
  const timeline = h('ol', { class: 'timeline', id: 'timeline' });
  const partials = h('div', { class: 'partials', id: 'partials' });
  const partialCount = h('span', { class: 'count', id: 'partial-count' }, '0');
  const finalBox = h('section', { class: 'card', id: 'final-result', hidden: true });

  replace(
    root,
    h('p', { class: 'crumbs' }, h('a', { href: '/ui/jobs' }, '« All jobs')),
    h('div', { class: 'page-head' }, h('h1', null, 'Job ', h('span', { class: 'mono' }, job.job_id)), streamState),
    actionProblem,
    summary,
    finalBox,
    h('div', { class: 'columns' },
      h('section', { class: 'card' }, h('h2', null, 'Events'), timeline),
      h('section', { class: 'card' }, h('h2', null, 'Partial snapshots ', partialCount), partials),
    ),
  );

  let canceling = false;
  const cancel = async () => {
    canceling = true;
    drawSummary();
    try {
      const answer = await api(`${path}/cancel`, { method: 'POST' });
      replace(actionProblem);
      job = { ...job, ...answer };
    } catch (e) {
      replace(actionProblem, problemView(e));
    } finally {
      canceling = false;
      drawSummary();
    }
  };

  const drawSummary = () => {
    const terminal = TERMINAL.has(job.status);
    replace(
      summary,
      h('dl', { class: 'facts' },
        fact('Status', statusBadge(job.status), job.cancel_requested_at && !terminal ? h('span', { class: 'muted' }, ' (cancel requested)') : null),
        fact('Analyzer', job.analyzer),
        fact('Progress', progressBar(job.status === 'completed' ? 1 : job.progress?.fraction, job.progress?.message)),
        fact('Attempt', `${job.attempt} of ${job.max_attempts}`),
        fact('Priority', String(job.priority)),
        fact('Created', time(job.created_at)),
        fact('Started', time(job.started_at)),
        fact('Finished', time(job.finished_at)),
        job.idempotency_key ? fact('Idempotency key', h('span', { class: 'mono' }, job.idempotency_key)) : null,
        job.error ? fact('Error', h('span', { class: 'error-text', id: 'job-error' }, `${job.error.code}: ${job.error.message}`)) : null,
        job.result_id ? fact('Latest result', h('a', { href: `/ui/results/${encodeURIComponent(job.result_id)}`, class: 'mono', id: 'result-link' }, job.result_id)) : null,
      ),
      h('div', { class: 'actions' },
        // Gone once terminal: a finished job has nothing to cancel.
        h('button', { type: 'button', id: 'cancel-job', class: 'danger', hidden: terminal, disabled: terminal || canceling || Boolean(job.cancel_requested_at), onclick: cancel }, job.cancel_requested_at && !terminal ? 'Cancel requested' : 'Cancel job'),
      ),
    );
  };
  drawSummary();

  // Partials come from the stream's job.partial events (replayed from the start, then live).
  // Payloads are loaded lazily: the newest one at once (shown open), the others when opened,
  // so a job with thousands of snapshots costs one request per snapshot actually looked at.
  const seenPartials = new Set();
  let newest = null;
  const loadPayload = async (item) => {
    if (item.dataset.loaded === 'true') return;
    item.dataset.loaded = 'true';
    const body = item.querySelector('.partial-body');
    try {
      const r = await api(`/analyze/results/${seg(item.dataset.resultId)}`);
      replace(body, isProfile(r.payload) ? profileSummary(r.payload) : jsonBlock(r.payload));
    } catch (e) {
      item.dataset.loaded = 'false';
      replace(body, problemView(e));
    }
  };
  let loadNewestTimer = null;
  const addPartial = (resultId, chunkKey, seq) => {
    if (seenPartials.has(resultId)) return;
    seenPartials.add(resultId);
    partialCount.textContent = String(seenPartials.size);
    const item = h(
      'details',
      { class: 'partial', 'data-result-id': resultId, 'data-chunk-key': chunkKey ?? '', 'data-seq': seq ?? '' },
      h('summary', null, h('span', { class: 'mono' }, chunkKey ?? `#${seq}`), ' · ', h('a', { href: `/ui/results/${encodeURIComponent(resultId)}` }, 'permalink')),
      h('div', { class: 'partial-body' }, h('span', { class: 'muted' }, 'loading…')),
    );
    item.addEventListener('toggle', () => {
      if (item.open) void loadPayload(item);
    });
    if (newest !== null && newest.dataset.pinned !== 'true') newest.open = false;
    newest = item;
    partials.prepend(item);
    // While events replay in a burst, only the last of the burst is fetched.
    clearTimeout(loadNewestTimer);
    loadNewestTimer = setTimeout(() => {
      if (newest === item) item.open = true;
    }, 100);
  };
  partials.addEventListener('click', (ev) => {
    // A snapshot the user opened stays open when newer ones arrive.
    const item = ev.target instanceof Element ? ev.target.closest('details.partial') : null;
    if (item !== null && ev.target.closest('summary') !== null) item.dataset.pinned = 'true';
  });

  const showFinal = async () => {
    if (job.status !== 'completed' || !job.result_id) return;
    try {
      const r = await api(`/analyze/results/${seg(job.result_id)}`);
      if (r.kind !== 'final') return;
      finalBox.hidden = false;
      replace(
        finalBox,
        h('h2', null, 'Result ', h('a', { href: `/ui/results/${encodeURIComponent(r.result_id)}`, class: 'mono', id: 'final-link' }, r.result_id)),
        isProfile(r.payload) ? profileSummary(r.payload) : jsonBlock(r.payload),
      );
    } catch (e) {
      finalBox.hidden = false;
      replace(finalBox, problemView(e));
    }
  };

  const onEvent = (e) => {
    // Keep the newest event in view while the reader is at the end of the timeline.
    const atEnd = timeline.scrollTop + timeline.clientHeight >= timeline.scrollHeight - 8;
    timeline.append(eventItem(e));
    if (atEnd) timeline.scrollTop = timeline.scrollHeight;
    job = { ...job, status: e.status };
    if (e.type === 'job.progress' && e.payload) job.progress = { fraction: e.payload.fraction ?? null, message: e.payload.message ?? null };
    if (e.type === 'job.partial' && e.payload?.result_id) addPartial(e.payload.result_id, e.payload.chunk_key, e.payload.seq);
    if (e.type === 'job.cancel_requested') job.cancel_requested_at ??= e.occurred_at;
    drawSummary();
    if (TERMINAL.has(e.status) || e.type === 'job.started' || e.type === 'job.retrying') void refresh();
  };
  // Facts the events do not carry (attempt, timestamps, error, result id) come from the job.
  const refresh = async () => {
    try {
      job = await api(path);
      drawSummary();
      if (TERMINAL.has(job.status)) await showFinal();
    } catch (e) {
      replace(actionProblem, problemView(e));
    }
  };

  const stop = followStream(`${path}/stream`, {
    onEvent,
    onState: (state, detail) => {
      streamState.dataset.state = state;
      streamState.textContent = { connecting: 'connecting…', live: '● live', reconnecting: `reconnecting…${detail ? ` (${detail})` : ''}`, ended: 'stream ended' }[state];
    },
    onError: (e) => replace(actionProblem, problemView(e)),
  });
  window.addEventListener('pagehide', stop, { once: true });
}

function fact(label, ...value) {
  return [h('dt', null, label), h('dd', null, ...value)];
}

function eventItem(e) {
  const detail = eventDetail(e);
  return h(
    'li',
    { class: `event event-${e.type.replace('job.', '')}`, 'data-seq': e.event_seq, 'data-type': e.type },
    h('span', { class: 'seq' }, `#${e.event_seq}`),
    h('span', { class: 'etype' }, e.type),
    statusBadge(e.status),
    time(e.occurred_at),
    detail ? h('span', { class: 'edetail' }, detail) : null,
  );
}

function eventDetail(e) {
  const p = e.payload ?? {};
  switch (e.type) {
    case 'job.progress':
      return `${Math.round((p.fraction ?? 0) * 100)}%${p.message ? ` ${p.message}` : ''}`;
    case 'job.partial':
      return p.chunk_key ?? '';
    case 'job.started':
      return p.attempt !== undefined ? `attempt ${p.attempt}` : '';
    case 'job.retrying':
    case 'job.failed':
      return p.error ? `${p.error.code ?? ''} ${p.error.message ?? ''}`.trim() : '';
    default:
      return '';
  }
}
