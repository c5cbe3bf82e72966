import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { apiClient, eventually, startTestServer, type TestServer } from '../helpers/server.js';
import { parseOrgId } from '../../src/core/ids.js';
import { AUDIENCE, ISSUER, signToken, startJwksServer, testKey, type JwksServer } from '../helpers/jwks.js';
import { requireProgram } from '../helpers/services.js';

/**
 * The web UI (SPEC §6, docs/ui.md) in a real headless Chromium against a real server on a
 * loopback port. UPSHIFT_UI_SCREENSHOTS=<dir> saves a PNG of each page for a human to look at.
 */

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = requireProgram('Chromium (headless browser for the web UI suite)', CHROMIUM);
const SCREENSHOTS = process.env.UPSHIFT_UI_SCREENSHOTS ?? null;
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

/** One browser for the file (each test opens its own contexts); launched only if present. */
let browser: Browser;
beforeAll(async () => {
  if (haveChromium) browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
});
afterAll(async () => {
  await browser?.close();
});

const CSV = ['city,temp,visits,when', 'Oslo,4.5,10,2026-01-01', 'Rome,17,12,2026-01-02', 'Lima,19.2,,2026-01-03', 'Oslo,3.9,7,2026-01-04', 'Pune,31,30,2026-01-05', 'Rome,16.5,11,2026-01-06', 'Oslo,2.1,9,2026-01-07', 'Lima,18,14,2026-01-08'].join('\n') + '\n';

/** How the files are served: no browser needed. */
describe('web UI files', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ UPSHIFT_WORKER_ENABLED: 'false' });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('serves the shell for every page URL, assets with ETag revalidation, and the UI config', async () => {
    const root = await fetch(`${server.url}/`, { redirect: 'manual' });
    expect(root.status).toBe(302);
    expect(root.headers.get('location')).toBe('/ui/');
    for (const path of ['/ui/', '/ui/jobs', '/ui/jobs/job_x', '/ui/results/res_y', '/ui/inbox', '/ui/submit']) {
      const r = await fetch(server.url + path);
      expect(r.status, path).toBe(200);
      expect(r.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(r.headers.get('content-security-policy')).toContain("default-src 'none'");
      expect(await r.text()).toContain('<script type="module" src="/ui/assets/app.js">');
    }
    const js = await fetch(`${server.url}/ui/assets/app.js`);
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(js.headers.get('x-content-type-options')).toBe('nosniff');
    const etag = js.headers.get('etag')!;
    expect(etag).toMatch(/^"[\w-]+"$/);
    expect((await fetch(`${server.url}/ui/assets/app.js`, { headers: { 'if-none-match': etag } })).status).toBe(304);
    expect((await fetch(`${server.url}/ui/assets/pages/job.js`)).status).toBe(200);
    const missing = await fetch(`${server.url}/ui/assets/nope.js`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toContain('application/problem+json');
    expect(((await missing.json()) as { code: string }).code).toBe('ROUTE_NOT_FOUND');
    const config = (await (await fetch(`${server.url}/ui/config.json`)).json()) as { auth_mode: string; analyzers: string[] };
    expect(config.auth_mode).toBe('trusted-header');
    expect(config.analyzers).toEqual(expect.arrayContaining(['dataset-profile', 'noop', 'sleep']));
    // Not part of the API description.
    const openapi = (await (await fetch(`${server.url}/openapi.json`)).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(openapi.paths).filter((p) => p === '/' || p.startsWith('/ui'))).toEqual([]);
  });

  it('UPSHIFT_UI_ENABLED=false serves the API only', async () => {
    const off = await startTestServer({ UPSHIFT_WORKER_ENABLED: 'false', UPSHIFT_UI_ENABLED: 'false' });
    try {
      for (const path of ['/', '/ui/', '/ui/assets/app.js', '/ui/config.json']) {
        const r = await fetch(off.url + path, { redirect: 'manual' });
        expect(r.status, path).toBe(404);
      }
      expect((await fetch(`${off.url}/health`)).status).toBe(200);
    } finally {
      await off.close();
    }
  });
});

describe.skipIf(!haveChromium)('web UI in headless Chromium', () => {
  let server: TestServer;
  const acme = () => apiClient(server.url, 'acme');
  const contexts: BrowserContext[] = [];
  /** Page errors and CSP violations of the current test: the UI must run clean. */
  let consoleProblems: string[] = [];

  beforeAll(async () => {
    server = await startTestServer({ UPSHIFT_NOTIFICATIONS_POLL_MS: '50' });
    if (SCREENSHOTS !== null) mkdirSync(SCREENSHOTS, { recursive: true });
  });
  afterEach(async () => {
    await Promise.all(contexts.splice(0).map((c) => c.close()));
    const problems = consoleProblems;
    consoleProblems = [];
    expect(problems).toEqual([]);
  });
  afterAll(async () => {
    await server?.close();
  });

  /** A page whose browser storage already names `org` (null: nobody signed in). */
  async function openPage(org: string | null): Promise<Page> {
    const context = await browser.newContext({
      viewport: { width: 1280, height: 900 },
      ...(org !== null && { storageState: { cookies: [], origins: [{ origin: server.url, localStorage: [{ name: 'upshift.org', value: org }] }] } }),
    });
    contexts.push(context);
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    page.on('pageerror', (e) => consoleProblems.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      // Chromium logs every non-2xx fetch as "Failed to load resource"; those are expected here.
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) consoleProblems.push(`console: ${m.text()}`);
    });
    return page;
  }

  async function shot(page: Page, name: string): Promise<void> {
    if (SCREENSHOTS !== null) await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
  }

  async function submitViaApi(body: unknown, org = 'acme'): Promise<string> {
    const r = await apiClient(server.url, org)<{ job_id: string }>('/analyze/jobs', { body });
    expect(r.status).toBe(202);
    return r.body.job_id;
  }

  it('/ leads to the UI, which asks for the org, then lists that org’s jobs', async () => {
    const jobId = await submitViaApi({ analyzer: 'noop', input: { hello: 'list' } }, 'initech');
    const page = await openPage(null);
    const res = await page.goto(`${server.url}/`);
    expect(page.url()).toBe(`${server.url}/ui/`);
    expect(res?.headers()['content-security-policy']).toContain("script-src 'self'");
    await page.fill('#signin input[name=org]', 'initech');
    await page.click('#signin button[type=submit]');
    await page.locator('#current-org', { hasText: 'initech' }).waitFor();
    await page.locator(`#jobs-table tr[data-job-id="${jobId}"]`).waitFor();
    // The org sits in localStorage: a new page of the same browser is signed in.
    const again = await page.context().newPage();
    await again.goto(`${server.url}/ui/inbox`);
    await again.locator('#current-org', { hasText: 'initech' }).waitFor();
  });

  it('submits a sleep job from the form and follows it live to completed with its partials', async () => {
    const page = await openPage('acme');
    await page.goto(`${server.url}/ui/submit`);
    await page.selectOption('#submit-analyzer', 'sleep');
    await page.fill('#submit-input', '{"ms": 4000, "steps": 4}');
    await page.fill('#submit-priority', '5');
    await page.click('#submit-button');
    const link = page.locator('#created-job-link');
    await link.waitFor();
    const jobId = (await link.textContent())!.trim();
    expect(jobId).toMatch(/^job_/);
    await shot(page, 'submit-created');
    await link.click();
    await page.waitForURL(`**/ui/jobs/${jobId}`);

    // While it runs, the page shows it running with fewer than all partials — live, no reload.
    await eventually(async () => {
      const status = await page.locator('#job-summary [data-status]').first().getAttribute('data-status');
      const partials = Number(await page.locator('#partial-count').textContent());
      return status === 'running' && partials >= 1 && partials < 4;
    });
    await page.locator('#stream-state[data-state="live"]').waitFor();
    await shot(page, 'job-running');
    await page.locator('#job-summary [data-status="completed"]').waitFor();
    await page.locator('#final-result #final-link').waitFor();
    await shot(page, 'job-completed');

    expect(await page.locator('#partial-count').textContent()).toBe('4');
    expect(await page.locator('#partials .partial').evaluateAll((els) => els.map((e) => e.getAttribute('data-chunk-key')))).toEqual(['step-4', 'step-3', 'step-2', 'step-1']);
    expect(await page.locator('#job-summary progress').getAttribute('value')).toBe('1');
    // The newest snapshot is open with its payload; an older one loads when opened.
    const newest = page.locator('#partials .partial').first();
    await newest.locator('pre.json', { hasText: '"step": 4' }).waitFor();
    const oldest = page.locator('#partials .partial[data-chunk-key="step-1"]');
    expect(await oldest.getAttribute('open')).toBeNull();
    await oldest.locator('summary').click({ position: { x: 5, y: 5 } });
    await oldest.locator('pre.json', { hasText: '"step": 1' }).waitFor();
    const timeline = await page.locator('#timeline li').evaluateAll((els) => els.map((e) => [Number(e.getAttribute('data-seq')), e.getAttribute('data-type')] as const));
    // The whole event log, in order, once each.
    expect(timeline.map(([seq]) => seq)).toEqual(timeline.map((_, i) => i + 1));
    const types = timeline.map(([, t]) => t);
    expect(types[0]).toBe('job.queued');
    expect(types.at(-1)).toBe('job.completed');
    expect(types.filter((t) => t === 'job.partial')).toHaveLength(4);
    expect(types).toContain('job.progress');
    const api = await acme()(`/analyze/jobs/${jobId}/events?limit=1000`);
    expect(timeline.length).toBe(api.body.events.length);
    expect((await acme()(`/analyze/jobs/${jobId}`)).body).toMatchObject({ status: 'completed', priority: 5 });

    // The same request with an idempotency key twice: one job, and the form says so.
    await page.goto(`${server.url}/ui/submit`);
    await page.fill('#submit-input', '{"ms": 1}');
    await page.fill('#submit-idempotency-key', 'ui-once');
    await page.click('#submit-button');
    const first = await page.locator('#created-job').getAttribute('data-job-id');
    await page.click('#submit-button');
    await page.locator('#created-job', { hasText: 'Already submitted with this idempotency key' }).waitFor();
    expect(await page.locator('#created-job').getAttribute('data-job-id')).toBe(first);

    // The job list shows it with its final status; the filter narrows the list.
    await page.goto(`${server.url}/ui/jobs?status=completed&analyzer=sleep`);
    await page.locator(`#jobs-table tr[data-job-id="${jobId}"] [data-status="completed"]`).waitFor();
    await page.goto(`${server.url}/ui/jobs?status=failed`);
    await page.locator('#jobs-table td.empty').waitFor();
  });

  it('the job list updates statuses live and pages with the cursor', async () => {
    const page = await openPage('paging');
    await Promise.all(Array.from({ length: 26 }, (_, i) => submitViaApi({ analyzer: 'noop', input: { i } }, 'paging')));
    await eventually(async () => (await apiClient(server.url, 'paging')('/analyze/jobs?status=completed&limit=200')).body.jobs.length === 26);
    await page.goto(`${server.url}/ui/jobs`);
    await page.locator('#jobs-table tbody tr').first().waitFor();
    expect(await page.locator('#jobs-table tbody tr').count()).toBe(25);
    await page.click('#page-older');
    await page.locator('#page-first').waitFor();
    expect(await page.locator('#jobs-table tbody tr').count()).toBe(1);
    await page.click('#page-first');
    await page.locator('#page-older').waitFor();

    // A job submitted while the page is open appears and reaches completed without a reload:
    // pushed by the org's event stream (while it is live the page does not poll).
    await page.locator('#jobs-live[data-stream="live"]').waitFor();
    const listCalls: string[] = [];
    page.on('request', (r) => {
      if (new URL(r.url()).pathname === '/analyze/jobs' && r.method() === 'GET') listCalls.push(r.url());
    });
    await new Promise((r) => setTimeout(r, 2500));
    expect(listCalls).toEqual([]); // nothing happened: no polling either
    const jobId = await submitViaApi({ analyzer: 'sleep', input: { ms: 3000 } }, 'paging');
    const row = page.locator(`#jobs-table tr[data-job-id="${jobId}"]`);
    await row.locator('[data-status="queued"], [data-status="running"]').waitFor();
    await row.locator('[data-status="completed"]').waitFor();
    await shot(page, 'job-list');
  });

  it('resumes a dropped stream with Last-Event-ID: every event once, in order', async () => {
    const jobId = await submitViaApi({ analyzer: 'sleep', input: { ms: 2500, steps: 5 } });
    const early = await eventually(async () => {
      const events = (await acme()(`/analyze/jobs/${jobId}/events`)).body.events as { event_seq: number; type: string }[];
      return events.length >= 3 ? events : null;
    });
    const page = await openPage('acme');
    const seen: (string | null)[] = [];
    // The first connection gets the early events and then ends without a terminal event, as
    // when a proxy or a server restart cuts it; later ones reach the real server.
    await page.route(`**/analyze/jobs/${jobId}/stream`, async (route) => {
      seen.push(route.request().headers()['last-event-id'] ?? null);
      if (seen.length > 1) return route.continue();
      const frames = early.map((e) => `id: ${e.event_seq}\r\nevent: ${e.type}\r\ndata: ${JSON.stringify(e)}\r\n\r\n`).join(': ping\r\n\r\n');
      return route.fulfill({ status: 200, headers: { 'content-type': 'text/event-stream' }, body: `retry: 50\n\n${frames}` });
    });
    await page.goto(`${server.url}/ui/jobs/${jobId}`);
    await page.locator('#job-summary [data-status="completed"]').waitFor();
    await page.locator('#stream-state[data-state="ended"]').waitFor();
    expect(seen.slice(0, 2)).toEqual([null, String(early.length)]);
    const seqs = await page.locator('#timeline li').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-seq'))));
    const all = (await acme()(`/analyze/jobs/${jobId}/events?limit=1000`)).body.events as unknown[];
    expect(seqs).toEqual(all.map((_, i) => i + 1));
    expect(await page.locator('#partial-count').textContent()).toBe('5');
  });

  it('parses text/event-stream frames split anywhere, with any line ending', async () => {
    const page = await openPage('acme');
    await page.goto(`${server.url}/ui/jobs`);
    // A string, not a function: vitest would rewrite a function's import() for Node.
    const events = (await page.evaluate(`(async () => {
      const { SseParser } = await import('/ui/assets/sse.js');
      const p = new SseParser();
      const chunks = ['retry: 2', '500\\n\\nid: 1\\r', '\\nevent: job.queued\\rdata: {"a":', '1}\\r\\n\\r\\n: ping\\n\\n', 'data: x\\ndata: y\\n', '\\nid: 2\\n', 'data\\n\\nevent: e\\n'];
      const out = chunks.flatMap((c) => p.push(c));
      return { out, retry: p.retry };
    })()`)) as { out: unknown[]; retry: number | null };
    expect(events.retry).toBe(2500);
    expect(events.out).toEqual([
      { id: '1', event: 'job.queued', data: '{"a":1}' },
      { id: '1', event: 'message', data: 'x\ny' },
      { id: '2', event: 'message', data: '' },
    ]);
    // An id in a block without data (the org stream's resume point) dispatches nothing but is
    // kept as announcedId; an id whose block is still incomplete is not.
    const announced = (await page.evaluate(`(async () => {
      const { SseParser } = await import('/ui/assets/sse.js');
      const p = new SseParser();
      const first = p.push('retry: 1000\\n\\nid: 7\\n\\nid: 8\\nev');
      const afterFirst = p.announcedId;
      const second = p.push('ent: x\\ndata: {}\\n\\n');
      return { first, afterFirst, second, afterSecond: p.announcedId };
    })()`)) as Record<string, unknown>;
    expect(announced).toEqual({ first: [], afterFirst: '7', second: [{ id: '8', event: 'x', data: '{}' }], afterSecond: '7' });
  });

  it('cancels a running job from its page', async () => {
    const jobId = await submitViaApi({ analyzer: 'sleep', input: { ms: 60_000, steps: 600 } });
    const page = await openPage('acme');
    await page.goto(`${server.url}/ui/jobs/${jobId}`);
    await page.locator('#job-summary [data-status="running"]').waitFor();
    await page.locator('#partials .partial').first().waitFor();
    await page.click('#cancel-job');
    await page.locator('#job-summary [data-status="canceled"]').waitFor();
    await page.locator('#timeline li[data-type="job.canceled"]').waitFor();
    expect(await page.locator('#timeline li[data-type="job.cancel_requested"]').count()).toBe(1);
    expect(await page.locator('#cancel-job').isDisabled()).toBe(true);
    expect(await page.locator('#cancel-job').isHidden()).toBe(true);
    await page.locator('#stream-state[data-state="ended"]').waitFor();
    await shot(page, 'job-canceled');
    expect((await acme()(`/analyze/jobs/${jobId}`)).body.status).toBe('canceled');
  });

  it('the permalink page renders a dataset profile as tables and SVG charts', async () => {
    const jobId = await submitViaApi({ analyzer: 'dataset-profile', input: { format: 'csv', data: CSV, chunk_rows: 3 } });
    const job = await eventually(async () => {
      const j = (await acme()(`/analyze/jobs/${jobId}`)).body;
      return j.status === 'completed' ? j : null;
    });
    const page = await openPage('acme');
    await page.goto(`${server.url}/ui/results/${job.result_id}`);
    await page.locator('table.profile-columns').waitFor();
    expect(await page.locator('#result-kind').textContent()).toBe('final');
    expect(await page.locator('.profile-headline').textContent()).toContain('8 rows');
    const columns = await page.locator('table.profile-columns tbody tr').evaluateAll((els) => els.map((e) => e.getAttribute('data-column')));
    expect(columns).toEqual(['city', 'temp', 'visits', 'when']);
    const temp = page.locator('table.profile-columns tr[data-column="temp"]');
    expect(await temp.locator('td').nth(0).textContent()).toBe('number');
    expect(await temp.locator('td').nth(4).textContent()).toBe('2.1'); // min
    expect(await temp.locator('td').nth(5).textContent()).toBe('31'); // max
    expect(await page.locator('table.profile-columns tr[data-column="visits"] td').nth(2).textContent()).toBe('1'); // nulls
    // Charts: a histogram for the numeric column (bars sum to its count), top values for the city.
    const bars = await page.locator('.column-card[data-column="temp"] svg.histogram rect.bar').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-count'))));
    expect(bars.length).toBeGreaterThan(0);
    expect(bars.reduce((a, b) => a + b, 0)).toBe(8);
    const top = page.locator('.column-card[data-column="city"] svg.top-values');
    expect(await top.locator('text.label').first().textContent()).toBe('Oslo');
    expect(await top.locator('rect.bar').first().getAttribute('data-count')).toBe('3');
    await shot(page, 'result-profile');

    // A partial of the same job, viewed as "latest", resolves to the final result.
    const results = (await acme()(`/analyze/jobs/${jobId}/results`)).body.results as { result_id: string; kind: string }[];
    const partial = results.find((r) => r.kind === 'partial')!;
    await page.goto(`${server.url}/ui/results/${partial.result_id}?view=latest`);
    await page.locator('.note a', { hasText: partial.result_id }).waitFor();
    expect(await page.locator('#result-kind').textContent()).toBe('final');

    // Any other payload: formatted JSON.
    const noop = await submitViaApi({ analyzer: 'noop', input: { answer: 42 } });
    const noopJob = await eventually(async () => {
      const j = (await acme()(`/analyze/jobs/${noop}`)).body;
      return j.status === 'completed' ? j : null;
    });
    await page.goto(`${server.url}/ui/results/${noopJob.result_id}`);
    expect(JSON.parse((await page.locator('pre.json').textContent())!)).toEqual({ answer: 42 });
  });

  it('the inbox shows the job’s notification and marks it read', async () => {
    const jobId = await submitViaApi({ analyzer: 'noop', input: { inbox: true } }, 'inboxorg');
    const inbox = apiClient(server.url, 'inboxorg');
    await eventually(async () => (await inbox(`/analyze/jobs/${jobId}/notifications`)).body.notifications.length === 1);
    const page = await openPage('inboxorg');
    await page.goto(`${server.url}/ui/inbox`);
    const item = page.locator(`#inbox li[data-job-id="${jobId}"]`);
    await item.waitFor();
    expect(await item.locator('.n-type').textContent()).toBe('async.job.completed');
    expect(await item.getAttribute('class')).toContain('unread');
    await page.locator('#unread-badge', { hasText: '1' }).waitFor();
    await shot(page, 'inbox');
    await item.locator('button.mark-read').click();
    await page.locator(`#inbox li.read[data-job-id="${jobId}"] .read-at`).waitFor();
    await page.locator('#unread-badge').waitFor({ state: 'hidden' });
    const n = (await inbox(`/analyze/jobs/${jobId}/notifications`)).body.notifications[0];
    expect(n.read_at).not.toBeNull();
    await page.goto(`${server.url}/ui/inbox?unread=true`);
    await page.locator('#inbox li.empty').waitFor();

    // Live: a job that ends while the inbox is open shows up, and the badge counts it, pushed by
    // the org's event stream; while the stream is live the page does not poll every 5 s.
    await page.goto(`${server.url}/ui/inbox`);
    await page.locator('#inbox[data-stream="live"]').waitFor();
    const calls: string[] = [];
    page.on('request', (r) => {
      if (new URL(r.url()).pathname === '/notifications') calls.push(r.url());
    });
    await new Promise((r) => setTimeout(r, 6000));
    expect(calls).toEqual([]); // the 5 s poll would have sent one
    const second = await submitViaApi({ analyzer: 'noop', input: { inbox: 2 } }, 'inboxorg');
    // Well before the live fallback poll (30 s): the terminal event triggered the reload.
    await page.locator(`#inbox li.unread[data-job-id="${second}"]`).waitFor({ timeout: 10_000 });
    await page.locator('#unread-badge', { hasText: '1' }).waitFor({ timeout: 10_000 });
  });

  it('another org’s job and result answer "not found"', async () => {
    const jobId = await submitViaApi({ analyzer: 'noop', input: { secret: 'acme-only' } });
    const job = await eventually(async () => {
      const j = (await acme()(`/analyze/jobs/${jobId}`)).body;
      return j.status === 'completed' ? j : null;
    });
    const page = await openPage('globex');
    await page.goto(`${server.url}/ui/jobs/${jobId}`);
    const problem = page.locator('.problem');
    await problem.waitFor();
    expect(await problem.locator('.problem-title').textContent()).toBe('Job not found');
    expect(await problem.getAttribute('data-status')).toBe('404');
    await shot(page, 'other-org-job');
    await page.goto(`${server.url}/ui/results/${job.result_id}`);
    await page.locator('.problem[data-code="RESULT_NOT_FOUND"]').waitFor();
    expect(await page.content()).not.toContain('acme-only');
  });

  it('uploads a dataset file from the form; a failed job shows its error', async () => {
    const page = await openPage('acme');
    await page.goto(`${server.url}/ui/submit`);
    await page.selectOption('#submit-analyzer', 'dataset-profile');
    await page.setInputFiles('#submit-file', { name: 'cities.csv', mimeType: 'text/csv', buffer: Buffer.from(CSV) });
    await page.click('#submit-button');
    await page.locator('#created-job-link').click();
    await page.locator('#job-summary [data-status="completed"]').waitFor();
    await page.locator('#final-result .profile-headline', { hasText: '8 rows' }).waitFor();
    const jobId = page.url().split('/').pop()!;
    expect((await acme()(`/analyze/jobs/${jobId}`)).body).toMatchObject({ analyzer: 'dataset-profile', status: 'completed' });

    const failed = await submitViaApi({ analyzer: 'sleep', input: { ms: 1, fail: 'permanent' } });
    await page.goto(`${server.url}/ui/jobs/${failed}`);
    await page.locator('#job-summary [data-status="failed"]').waitFor();
    expect(await page.locator('#job-error').textContent()).toContain('permanent failure requested by input');
    expect(await page.locator('#timeline li[data-type="job.failed"]').count()).toBe(1);
  });

  it('the submit form shows the 4xx problem for malformed JSON and for input the analyzer rejects', async () => {
    const countJobs = async () => (await acme()('/analyze/jobs?limit=200')).body.jobs.length as number;
    const before = await countJobs();
    const page = await openPage('acme');
    await page.goto(`${server.url}/ui/submit`);
    await page.selectOption('#submit-analyzer', 'sleep');
    await page.fill('#submit-input', '{"ms": 10,');
    await page.click('#submit-button');
    const problem = page.locator('#submit-outcome .problem');
    await problem.waitFor();
    expect(await problem.getAttribute('data-status')).toBe('400');
    expect(await problem.getAttribute('data-code')).toBe('BODY_MALFORMED');
    expect(await problem.locator('.problem-title').textContent()).toBe('Body malformed');
    expect((await problem.locator('.problem-detail').textContent())!.length).toBeGreaterThan(0);
    await shot(page, 'submit-malformed');

    await page.fill('#submit-input', '{"ms": "soon"}');
    await page.click('#submit-button');
    await page.locator('#submit-outcome .problem[data-code="ANALYZER_INPUT_INVALID"][data-status="422"]').waitFor();
    expect(await countJobs()).toBe(before);
  });
});

describe.skipIf(!haveChromium)('web UI with API keys', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ UPSHIFT_AUTH_MODE: 'api-key' });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('asks for a key, sends it as a bearer token, never shows it, and signs out', async () => {
    const { key } = await server.app.apiKeys.create(parseOrgId('keyed'), 'ui test');
    const r = await fetch(`${server.url}/analyze/jobs`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ analyzer: 'noop', input: { k: 1 } }) });
    const { job_id: jobId } = (await r.json()) as { job_id: string };
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      page.setDefaultTimeout(15_000);
      await page.goto(`${server.url}/ui/jobs`);
      // A wrong key: the API's 401 problem.
      await page.fill('#signin input[name=key]', 'upk_not_a_real_key');
      await page.click('#signin button[type=submit]');
      await page.locator('.problem[data-status="401"]').waitFor();
      await page.click('#sign-out');
      await page.fill('#signin input[name=key]', key);
      await page.click('#signin button[type=submit]');
      await page.locator(`#jobs-table tr[data-job-id="${jobId}"]`).waitFor();
      expect(await page.content()).not.toContain(key);
      expect(await page.evaluate(() => Object.keys((globalThis as any).localStorage))).toEqual([]); // tab-only unless remembered
      await page.click('#sign-out');
      await page.locator('#signin input[name=key]').waitFor();
      expect(await page.evaluate(() => (globalThis as any).sessionStorage.length)).toBe(0);
    } finally {
      await context.close();
    }
  });
});

describe.skipIf(!haveChromium)('web UI with JWTs', () => {
  let server: TestServer;
  let jwks: JwksServer;
  beforeAll(async () => {
    const key = await testKey('ui-key');
    jwks = await startJwksServer([key]);
    server = await startTestServer({ UPSHIFT_AUTH_MODE: 'jwt', UPSHIFT_JWT_JWKS_URL: jwks.url, UPSHIFT_JWT_ISSUER: ISSUER, UPSHIFT_JWT_AUDIENCE: AUDIENCE });
    token = await signToken(key, { org_id: 'jwtorg' });
  });
  let token = '';
  afterAll(async () => {
    await server?.close();
    await jwks?.close();
  });

  it('signs in with a token and follows a job live over the authenticated stream', async () => {
    const r = await fetch(`${server.url}/analyze/jobs`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ analyzer: 'sleep', input: { ms: 1500, steps: 2 } }) });
    expect(r.status).toBe(202);
    const { job_id: jobId } = (await r.json()) as { job_id: string };
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      page.setDefaultTimeout(15_000);
      await page.goto(`${server.url}/ui/jobs/${jobId}`);
      expect(await page.locator('#signin label[for=key-input]').textContent()).toBe('Token (JWT)');
      await page.fill('#signin input[name=key]', token);
      await page.click('#signin button[type=submit]');
      await page.locator('#job-summary [data-status="completed"]').waitFor();
      // The summary can show `completed` from the page's first fetch (the 1.5 s job may be done
      // by the time sign-in finishes); partials arrive with the stream's replay, in order, before
      // its job.completed event — so wait for that event before counting them.
      await page.locator('#timeline li[data-type="job.completed"]').waitFor();
      expect(await page.locator('#partial-count').textContent()).toBe('2');
      expect(await page.locator('#timeline li[data-type="job.completed"]').count()).toBe(1);
      expect(await page.content()).not.toContain(token);
    } finally {
      await context.close();
    }
  });
});

describe.skipIf(!haveChromium)('web UI under a tenant rate limit', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ UPSHIFT_RATE_LIMIT_PER_MINUTE: '2', UPSHIFT_WORKER_ENABLED: 'false' });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('shows the 429 problem and polls again only after Retry-After', async () => {
    const context = await browser.newContext({ storageState: { cookies: [], origins: [{ origin: server.url, localStorage: [{ name: 'upshift.org', value: 'limited' }] }] } });
    try {
      const page = await context.newPage();
      const listCalls: number[] = [];
      page.on('request', (r) => {
        if (new URL(r.url()).pathname === '/analyze/jobs') listCalls.push(Date.now());
      });
      // 2 tokens: the list and the badge at load; the first poll, 2 s later, gets 429.
      await page.goto(`${server.url}/ui/jobs`);
      await page.locator('.problem[data-code="RATE_LIMITED"][data-status="429"]').waitFor({ timeout: 15_000 });
      const limitedAt = Date.now();
      await new Promise((r) => setTimeout(r, 3000));
      // Retry-After is ~30 s (one token at 2/min): no list request in the 3 s after the 429
      // (without the back-off, the 2 s poll would have sent one).
      expect(listCalls.filter((t) => t > limitedAt)).toEqual([]);
      expect(await page.locator('.problem').textContent()).toMatch(/Try again in \d+ s/);
    } finally {
      await context.close();
    }
  });
});
