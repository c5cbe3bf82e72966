// Notification inbox: the tenant's in-app notifications (latest first), unread filter, cursor
// paging, mark read. Also keeps the unread badge in the header.
// Live: a job's notification is written when the job ends, so both follow the org's event stream
// and reload on terminal events (REACT_MS after, and again OUTBOX_LAG_MS later for notifications
// delivered through the outbox). Marking read (here, in another tab or through the API) is no job
// event: while the stream is live they still reload every LIVE_POLL_MS / BADGE_LIVE_POLL_MS;
// while it is not (connecting, refused, or — for the badge — a page that does not open it) every
// POLL_MS / BADGE_POLL_MS.
import { api, poll, query, seg } from '../api.js';
import { h, replace, statusBadge, time } from '../dom.js';
import { followOrgEvents, listenOrgEvents, reloadOnTerminal } from '../orgStream.js';
import { problemView } from '../problem.js';

const PAGE_SIZE = 25;
const POLL_MS = 5000;
const LIVE_POLL_MS = 30_000;
const BADGE_LIMIT = 100;
const BADGE_POLL_MS = 15_000;
const BADGE_LIVE_POLL_MS = 60_000;
const REACT_MS = 250;
const OUTBOX_LAG_MS = 2000;

/**
 * Keeps `load` fresh from the org stream: runs it after terminal job events (REACT_MS, and
 * OUTBOX_LAG_MS later) and polls every `pollMs`, but only every `livePollMs` while the stream is
 * live (event-driven runs count as polls). `open`: this part opens the stream (else it only
 * listens where the page did). Returns the run function (call it for the first load).
 */
function keepFresh(load, { pollMs, livePollMs, open, onLive }) {
  let live = false;
  let lastRun = 0;
  const run = () => {
    lastRun = Date.now();
    return load();
  };
  poll(() => (live && Date.now() - lastRun < livePollMs ? Promise.resolve(null) : run()), pollMs);
  (open ? followOrgEvents : listenOrgEvents)({
    onEvent: reloadOnTerminal(run, { delayMs: REACT_MS, lagMs: OUTBOX_LAG_MS }),
    onState: (state) => {
      live = state === 'live';
      onLive?.(live);
    },
  });
  return run;
}

export async function renderInbox(root, ctx) {
  const unread = ctx.params.get('unread') === 'true';
  const cursor = ctx.params.get('cursor') ?? '';
  const problem = h('div');
  const list = h('ul', { class: 'inbox', id: 'inbox' });
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' });
  replace(
    root,
    h('div', { class: 'page-head' }, h('h1', null, 'Inbox')),
    h(
      'nav',
      { class: 'tabs', 'aria-label': 'Filter' },
      h('a', { href: '/ui/inbox', 'aria-current': unread ? null : 'page' }, 'All'),
      h('a', { href: `/ui/inbox${query({ unread: 'true' })}`, 'aria-current': unread ? 'page' : null, id: 'inbox-unread' }, 'Unread'),
    ),
    problem,
    list,
    pager,
  );

  const markRead = async (n, button) => {
    button.disabled = true;
    try {
      const updated = await api(`/notifications/${seg(n.notification_id)}/read`, { method: 'POST' });
      replace(problem);
      const li = list.querySelector(`[data-notification-id="${CSS.escape(n.notification_id)}"]`);
      li?.replaceWith(item(updated, markRead));
      void refreshBadge();
    } catch (e) {
      button.disabled = false;
      replace(problem, problemView(e));
    }
  };

  const load = async () => {
    try {
      const page = await api(`/notifications${query({ unread: unread ? 'true' : undefined, cursor: cursor || undefined, limit: PAGE_SIZE })}`);
      replace(problem);
      if (page.notifications.length === 0) replace(list, h('li', { class: 'empty' }, unread ? 'No unread notifications.' : 'No notifications yet.'));
      else replace(list, page.notifications.map((n) => item(n, markRead)));
      const base = { unread: unread ? 'true' : undefined };
      replace(
        pager,
        cursor ? h('a', { href: `/ui/inbox${query(base)}` }, '« Newest') : null,
        page.next_cursor ? h('a', { href: `/ui/inbox${query({ ...base, cursor: page.next_cursor })}`, id: 'inbox-older' }, 'Older »') : null,
      );
      return null;
    } catch (e) {
      replace(problem, problemView(e));
      return e;
    }
  };
  const reload = keepFresh(load, {
    pollMs: POLL_MS,
    livePollMs: LIVE_POLL_MS,
    open: true,
    onLive: (live) => {
      list.dataset.stream = live ? 'live' : 'off';
    },
  });
  await reload();
}

function item(n, markRead) {
  const p = n.payload ?? {};
  const read = n.read_at !== null;
  const button = h('button', { type: 'button', class: 'mark-read', onclick: () => markRead(n, button) }, 'Mark read');
  return h(
    'li',
    { class: `notification${read ? ' read' : ' unread'}`, 'data-notification-id': n.notification_id, 'data-job-id': n.job_id },
    h('div', { class: 'n-head' }, h('strong', { class: 'n-type' }, n.type), p.status ? statusBadge(p.status) : null, time(n.created_at)),
    h(
      'div',
      { class: 'n-body' },
      'Job ', h('a', { href: `/ui/jobs/${encodeURIComponent(n.job_id)}`, class: 'mono' }, n.job_id),
      p.analyzer ? ` (${p.analyzer})` : '',
      p.result_id ? [' · result ', h('a', { href: `/ui/results/${encodeURIComponent(p.result_id)}`, class: 'mono' }, p.result_id)] : null,
      p.error ? h('div', { class: 'error-text' }, `${p.error.code ?? ''} ${p.error.message ?? ''}`.trim()) : null,
    ),
    h('div', { class: 'n-actions' }, read ? h('span', { class: 'muted read-at' }, 'read ', time(n.read_at)) : button),
  );
}

let badgeEl = null;

async function refreshBadge() {
  if (badgeEl === null) return null;
  try {
    const page = await api(`/notifications${query({ unread: 'true', limit: BADGE_LIMIT })}`);
    const n = page.notifications.length;
    badgeEl.hidden = n === 0;
    badgeEl.textContent = page.next_cursor ? `${n}+` : String(n);
    return null;
  } catch (e) {
    // The badge is a hint; pages show API errors themselves.
    return e;
  }
}

/** Shows the number of unread notifications next to "Inbox" (see the top of this file for when it refreshes). */
export function startUnreadBadge(el) {
  badgeEl = el;
  void keepFresh(refreshBadge, { pollMs: BADGE_POLL_MS, livePollMs: BADGE_LIVE_POLL_MS, open: false })();
}
