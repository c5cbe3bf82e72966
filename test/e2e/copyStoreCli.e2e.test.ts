import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildEmbeddedStore } from '../helpers/copyStoreFixture.js';
import { dropSchema, requirePostgres, testSchemaName } from '../helpers/services.js';
import { runUpshift as cli } from '../helpers/upshiftCli.js';

const pgUrl = await requirePostgres();
const ORGS = ['acme', 'globex'];

/**
 * `upshift copy-store` as operators run it, on a small store: flags, the dry run's table and
 * JSON, and --verify's table and exit code on a tampered target (the big acceptance run is
 * copyStore.e2e.test.ts).
 */
describe.skipIf(!pgUrl)('upshift copy-store (CLI)', () => {
  const url = pgUrl as string;
  const schema = testSchemaName();
  const dir = mkdtempSync(join(tmpdir(), 'upshift-copy-cli-'));
  const file = join(dir, 'upshift.db');
  const args = ['copy-store', '--from', `sqlite:${file}`, '--to', url, '--schema', schema];

  beforeAll(async () => {
    await buildEmbeddedStore(file, ORGS, 30);
    const migrated = await cli(['migrate', '--database', url], { UPSHIFT_DATABASE_SCHEMA: schema, UPSHIFT_LOG_LEVEL: 'silent' });
    if (migrated.code !== 0) throw new Error(migrated.stderr);
  }, 60_000);
  afterAll(async () => {
    await dropSchema(url, schema);
    rmSync(dir, { recursive: true, force: true });
  });

  it('bad flags are usage errors (exit 2) and name the flag', async () => {
    const cases: [string[], RegExp][] = [
      [['copy-store', '--from', file, '--to', url], /--from must be sqlite:<path>/],
      [['copy-store', '--from', `sqlite:${file}`, '--to', 'mysql://x'], /--to must be a postgres/],
      [[...args, '--batch-size', '0'], /--batch-size must be an integer/],
      [[...args, '--max-rows-per-second', '1.5'], /--max-rows-per-second must be an integer/],
      [[...args, '--dry-run', '--verify'], /either --dry-run or --verify/],
      [[...args, '--schema', 'Bad-Name'], /--schema must match/],
    ];
    for (const [argv, message] of cases) {
      const r = await cli(argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    const missing = await cli(['copy-store', '--from', `sqlite:${join(dir, 'nope.db')}`, '--to', url, '--schema', schema]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('does not exist');
  });

  it('--dry-run prints what it would copy per org and table and writes nothing', async () => {
    const r = await cli([...args, '--dry-run', '--no-progress', '--output-json', join(dir, 'dry.json')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^copy-store dry-run: completed/);
    expect(r.stdout).toMatch(/acme\s+job_events\s+\d+\s+0/);
    expect(r.stderr).toBe('');
    const report = JSON.parse(readFileSync(join(dir, 'dry.json'), 'utf8')) as { mode: string; target: { url: string; schema: string }; orgs: Record<string, { toCopy: Record<string, number> }> };
    expect(report.mode).toBe('dry-run');
    expect(report.target.schema).toBe(schema);
    expect(report.orgs.globex?.toCopy.jobs).toBe(30 + 40 + 30);
    expect(await count(url, `SELECT count(*) FROM "${schema}".jobs`)).toBe(0);
  });

  it('copies with plain progress lines; --verify prints a table, exits 1 on a tampered row, 0 once repaired', async () => {
    const copy = await cli(args);
    expect(copy.code, copy.stderr).toBe(0);
    expect(copy.stderr).toMatch(/^copy-store: copy acme api_keys: \d+\/\d+ rows$/m);
    expect(copy.stdout).toMatch(/^copy-store copy: completed/);

    const ok = await cli([...args, '--verify']);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^org\s+table\s+source rows\s+target rows\s+source checksum\s+target checksum/);
    expect(ok.stdout).toMatch(/verify: OK/);

    await count(url, `UPDATE "${schema}".notifications SET read_at = 1 WHERE notification_id = (SELECT min(notification_id) FROM "${schema}".notifications WHERE org_id = 'globex' AND read_at IS NULL)`);
    const bad = await cli([...args, '--verify', '--no-progress']);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/globex\s+notifications\s+(\d+)\s+\1\s+\S+\s+\S+\s+MISMATCH/);
    expect(bad.stdout.match(/MISMATCH/g)).toHaveLength(2); // the row, and the summary line
    expect(bad.stderr).toContain('verification FAILED: 1 org/table pair(s) differ');

    const repair = await cli([...args, '--no-progress']);
    expect(repair.code).toBe(0);
    expect(repair.stdout).toMatch(/globex\s+notifications\s+0\s+1\s+0/);
    expect((await cli([...args, '--verify', '--no-progress'])).code).toBe(0);
  }, 60_000);
});

/** Runs a statement; for a SELECT count(*), its result. */
async function count(url: string, sql: string): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const r = await c.query<{ count?: string }>(sql);
    return Number(r.rows[0]?.count ?? 0);
  } finally {
    await c.end();
  }
}
