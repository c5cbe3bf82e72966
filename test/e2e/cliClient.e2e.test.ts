// The client commands (`upshift jobs …`) against a scripted HTTP server over a real socket:
// SSE parsing across chunk boundaries, reconnect with Last-Event-ID after a cut, exit codes,
// problem output, headers and streamed uploads. The real server is covered by cli.e2e.test.ts.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'upshift-cli-client-'));

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('UPSHIFT_')));
  const child = spawn(process.execPath, [join(root, 'bin', 'upshift.js'), ...args], { env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
}

/** Well-formed job ids (job_ + 26 base32 characters); the scripted server knows the first three. */
const jobId = (c: string): string => `job_01k${c.repeat(23)}`;
const JOB_OK = jobId('a');
const JOB_FAIL = jobId('b');
const JOB_CANCEL = jobId('c');
const JOB_MISSING = jobId('d');

const ev = (seq: number, type: string, status: string, payload: unknown = {}): string =>
  `id: ${seq}\r\nevent: ${type}\r\ndata: ${JSON.stringify({ job_id: JOB_OK, event_seq: seq, type, status, payload })}\r\n\r\n`;

let server: Server;
let url = '';
const seen: { method: string; url: string; headers: IncomingMessage['headers']; body: string }[] = [];
let okStreamConnections = 0;
let lastEventIdOnReconnect: string | undefined;

function job(res: ServerResponse, id: string, status: string): void {
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ job_id: id, status, error: null }));
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  let body = '';
  for await (const c of req) body += (c as Buffer).toString();
  seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
  const path = req.url ?? '';
  if (req.method === 'POST' && /^\/analyze\/jobs(\?|$)/.test(path)) {
    res.writeHead(202, { 'content-type': 'application/json' }).end(JSON.stringify({ job_id: JOB_OK, status: 'queued', status_url: `/analyze/jobs/${JOB_OK}` }));
    return;
  }
  if (path === `/analyze/jobs/${JOB_OK}/stream`) {
    okStreamConnections++;
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    if (okStreamConnections === 1) {
      // Events split at awkward places (inside a CRLF, inside a field), a heartbeat comment,
      // then the connection dies in the middle of event 4.
      const text = `: hello\n\n${ev(1, 'job.queued', 'queued')}${ev(2, 'job.started', 'running')}${ev(3, 'job.partial', 'running', { chunk_key: 'rows-0' })}`;
      for (const piece of [text.slice(0, 7), text.slice(7, 60), text.slice(60, 61), text.slice(61)]) {
        res.write(piece);
        await new Promise((r) => setTimeout(r, 20));
      }
      res.write('id: 4\nevent: job.progress\ndata: {"type":"job.prog');
      await new Promise((r) => setTimeout(r, 50));
      res.destroy();
      return;
    }
    lastEventIdOnReconnect = req.headers['last-event-id'] as string | undefined;
    // A resumed stream that replays one event too many: the client must not show it twice.
    res.end(`${ev(3, 'job.partial', 'running', { chunk_key: 'rows-0' })}${ev(4, 'job.progress', 'running', { fraction: 0.5, message: 'half' })}${ev(5, 'job.completed', 'completed')}`);
    return;
  }
  if (path === `/analyze/jobs/${JOB_FAIL}/stream` || path === `/analyze/jobs/${JOB_CANCEL}/stream`) {
    const failed = path.includes(JOB_FAIL);
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.end(`${ev(1, 'job.queued', 'queued')}${failed ? ev(2, 'job.failed', 'failed', { error: { code: 'ANALYZER_FAILED', message: 'boom' } }) : ev(2, 'job.canceled', 'canceled')}`);
    return;
  }
  if (path === `/analyze/jobs/${JOB_OK}`) return job(res, JOB_OK, 'completed');
  if (path === `/analyze/jobs/${JOB_FAIL}`) return job(res, JOB_FAIL, 'failed');
  if (path === `/analyze/jobs/${JOB_CANCEL}`) return job(res, JOB_CANCEL, 'canceled');
  res.writeHead(404, { 'content-type': 'application/problem+json' }).end(JSON.stringify({ type: 'about:blank', title: 'Not Found', status: 404, code: 'JOB_NOT_FOUND', detail: `job ${path.split('/')[3]} not found` }));
}

beforeAll(async () => {
  if (!existsSync(join(root, 'dist', 'src', 'cli', 'main.js'))) execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: root });
  server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

describe('upshift jobs (client)', () => {
  it('wait: survives a cut stream, resumes with Last-Event-ID, shows each event once, exits 0', async () => {
    const r = await cli(['jobs', 'wait', JOB_OK, '--url', url, '--org', 'acme']);
    expect(r.code, r.stderr).toBe(0);
    expect(okStreamConnections).toBe(2);
    expect(lastEventIdOnReconnect).toBe('3');
    expect(JSON.parse(r.stdout)).toMatchObject({ job_id: JOB_OK, status: 'completed' });
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('#'));
    expect(lines.map((l) => l.split(' ')[0])).toEqual(['#1', '#2', '#3', '#4', '#5']);
    expect(r.stderr).toContain('#3 job.partial running rows-0');
    expect(r.stderr).toContain('#4 job.progress running 50% half');
    expect(r.stderr).toMatch(/reconnecting after event 3/);
  });

  it('wait: exit 1 for a failed job, 3 for a canceled one', async () => {
    const failed = await cli(['jobs', 'wait', JOB_FAIL, '--url', url]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('job.failed failed ANALYZER_FAILED: boom');
    expect(JSON.parse(failed.stdout).status).toBe('failed');
    const canceled = await cli(['jobs', 'wait', JOB_CANCEL, '--url', url]);
    expect(canceled.code).toBe(3);
    expect(JSON.parse(canceled.stdout).status).toBe('canceled');
  });

  it('a problem response prints `code: detail` and exits 1', async () => {
    for (const args of [['get', JOB_MISSING], ['wait', JOB_MISSING], ['cancel', JOB_MISSING]]) {
      const r = await cli(['jobs', ...args, '--url', url]);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`JOB_NOT_FOUND: job ${JOB_MISSING} not found\n`);
      expect(r.stdout).toBe('');
    }
  });

  it('submit: sends tenant, bearer key and idempotency key from flags or env; prints the reference', async () => {
    seen.length = 0;
    const r = await cli(['jobs', 'submit', 'word-count', '--input', '{"text":"a b"}', '--idempotency-key', 'k-1'], {
      UPSHIFT_URL: url,
      UPSHIFT_ORG: 'acme',
      UPSHIFT_API_KEY: 'upk_secret',
    });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ job_id: JOB_OK, status: 'queued' });
    const req = seen.find((s) => s.method === 'POST');
    expect(req?.url).toBe('/analyze/jobs');
    expect(req?.headers['x-org-id']).toBe('acme');
    expect(req?.headers.authorization).toBe('Bearer upk_secret');
    expect(req?.headers['idempotency-key']).toBe('k-1');
    expect(req?.headers['content-type']).toBe('application/json');
    expect(JSON.parse(req?.body ?? '')).toEqual({ analyzer: 'word-count', input: { text: 'a b' } });
  });

  it('submit --input-file reads JSON; --file streams the file with its content type', async () => {
    writeFileSync(join(dir, 'in.json'), '{"text":"from file"}');
    writeFileSync(join(dir, 'data.csv'), 'city,temp\nOslo,3\nLima,19\n');
    seen.length = 0;
    expect((await cli(['jobs', 'submit', 'word-count', '--input-file', join(dir, 'in.json'), '--url', url])).code).toBe(0);
    expect(JSON.parse(seen[0]?.body ?? '').input).toEqual({ text: 'from file' });
    seen.length = 0;
    const up = await cli(['jobs', 'submit', 'dataset-profile', '--file', join(dir, 'data.csv'), '--format', 'csv', '--url', url, '--org', 'acme']);
    expect(up.code, up.stderr).toBe(0);
    expect(seen[0]?.url).toBe('/analyze/jobs?analyzer=dataset-profile&format=csv');
    expect(seen[0]?.headers['content-type']).toBe('text/csv');
    expect(seen[0]?.body).toBe('city,temp\nOslo,3\nLima,19\n');
  });

  it('submit --wait follows the job and exits with its outcome', async () => {
    const r = await cli(['jobs', 'submit', 'word-count', '--input', '{"text":"x"}', '--wait', '--url', url]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`submitted ${JOB_OK}`);
    expect(JSON.parse(r.stdout).status).toBe('completed');
  });

  it('usage errors exit 2 before any request', async () => {
    seen.length = 0;
    const bad = await cli(['jobs', 'submit', 'x', '--input', '{nope', '--url', url]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--input is not valid JSON');
    expect((await cli(['jobs', 'submit', 'x', '--file', join(dir, 'missing.csv'), '--url', url])).code).toBe(2);
    expect((await cli(['jobs', 'submit', 'x', '--file', join(dir, 'data.csv'), '--format', 'xlsx', '--url', url])).code).toBe(2);
    expect((await cli(['jobs', 'get', JOB_OK, '--url', 'not a url'])).code).toBe(2);
    expect((await cli(['jobs', 'frobnicate'])).code).toBe(2);
    expect(seen).toEqual([]);
  });

  it('an unreachable server is a clear failure (exit 1)', async () => {
    // A port that was free a moment ago: nothing listens there.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const r = await cli(['jobs', 'get', JOB_OK, '--url', `http://127.0.0.1:${port}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`upshift: cannot reach http://127.0.0.1:${port}: ECONNREFUSED\n`);
  });
});
