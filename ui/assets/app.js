// Entry point: reads the UI config, sets up sign-in, and renders the page for the URL.
// Pages are plain full-page navigations (each URL is a permalink); live parts follow the API.
import { hasCredentials, renderAuthBar, setAuthMode, signInForm } from './auth.js';
import { h, replace, routeSegments } from './dom.js';
import { renderInbox, startUnreadBadge } from './pages/inbox.js';
import { renderJob } from './pages/job.js';
import { renderJobs } from './pages/jobs.js';
import { renderResult } from './pages/result.js';
import { renderSubmit } from './pages/submit.js';
import { problemView } from './problem.js';

const root = document.getElementById('app');

const WELCOME = {
  'trusted-header': 'Enter the org you act for. It is sent as X-Org-Id with every request.',
  'api-key': 'This server authenticates with API keys. Enter one to act for its org.',
  jwt: 'This server authenticates with bearer tokens (JWTs) from your identity provider. Paste one; you act for the org it names.',
};

async function loadConfig() {
  const res = await fetch('/ui/config.json', { cache: 'no-store' });
  if (!res.ok) throw new Error(`could not load /ui/config.json (HTTP ${res.status})`);
  return res.json();
}

function route(segments) {
  const [section, id] = segments;
  if (section === undefined || (section === 'jobs' && id === undefined)) return { name: 'jobs', render: renderJobs };
  if (section === 'jobs' && id !== undefined && segments.length === 2) return { name: 'jobs', render: (el, ctx) => renderJob(el, ctx, id) };
  if (section === 'results' && id !== undefined && segments.length === 2) return { name: 'results', render: (el, ctx) => renderResult(el, ctx, id) };
  if (section === 'inbox' && segments.length === 1) return { name: 'inbox', render: renderInbox };
  if (section === 'submit' && segments.length === 1) return { name: 'submit', render: renderSubmit };
  return null;
}

async function boot() {
  let config;
  try {
    config = await loadConfig();
  } catch (e) {
    replace(root, problemView(e));
    return;
  }
  setAuthMode(config.auth_mode);
  const reload = () => location.reload();
  renderAuthBar(document.getElementById('auth'), reload);

  const r = route(routeSegments());
  for (const a of document.querySelectorAll('nav a[data-section]')) {
    if (r !== null && a.dataset.section === r.name) a.setAttribute('aria-current', 'page');
  }
  if (!hasCredentials()) {
    replace(
      root,
      h('section', { class: 'welcome' }, h('h1', null, 'Sign in'), h('p', null, WELCOME[config.auth_mode] ?? WELCOME['api-key']), signInForm(reload)),
    );
    return;
  }
  startUnreadBadge(document.getElementById('unread-badge'));
  if (r === null) {
    replace(root, h('h1', null, 'Page not found'), h('p', null, 'No such page. ', h('a', { href: '/ui/jobs' }, 'Go to the job list.')));
    return;
  }
  const ctx = { config, params: new URLSearchParams(location.search) };
  try {
    await r.render(root, ctx);
  } catch (e) {
    replace(root, problemView(e));
  }
}

void boot();
