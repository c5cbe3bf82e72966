import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig, resolveSqliteWriter } from '../../src/config/config.js';
import { parseOrgId } from '../../src/core/ids.js';
import { createUpshift, type Upshift } from '../../src/main.js';
import { until } from '../helpers/runtime.js';

/**
 * `UPSHIFT_SQLITE_WRITER=auto` by role, through the composition root: a process that answers
 * HTTP writes on the writer thread; one without HTTP resolves like a headless worker. Either way
 * a job runs to completion on the real SQLite file.
 */
const org = parseOrgId('acme');
const open: Array<{ up: Upshift; dir: string }> = [];
afterEach(async () => {
  for (const { up, dir } of open.splice(0)) {
    await up.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

async function start(http: boolean, writer?: string): Promise<Upshift> {
  const dir = mkdtempSync(join(tmpdir(), 'upshift-writer-'));
  const config = loadConfig({}, {
    UPSHIFT_DATABASE_URL: `sqlite:${join(dir, 'db.sqlite')}`,
    UPSHIFT_DATA_DIR: dir,
    UPSHIFT_LOG_LEVEL: 'error',
    UPSHIFT_PORT: '0',
    ...(writer !== undefined && { UPSHIFT_SQLITE_WRITER: writer }),
  });
  const up = await createUpshift({ config, http });
  open.push({ up, dir });
  await up.start();
  const { job } = await up.service.submit(org, { analyzer: 'noop', input: { http } });
  await until(async () => (await up.service.get(org, job.jobId)).status === 'completed', 10_000);
  return up;
}

describe('the SQLite writer a process runs', () => {
  it('auto: the thread when it answers HTTP, the headless choice without HTTP; explicit settings win', async () => {
    expect((await start(true)).sqliteWriter).toBe('thread');
    expect((await start(false)).sqliteWriter).toBe(resolveSqliteWriter('auto', { servesHttp: false }));
    expect((await start(true, 'inline')).sqliteWriter).toBe('inline');
    expect((await start(false, 'thread')).sqliteWriter).toBe('thread');
  });
});
