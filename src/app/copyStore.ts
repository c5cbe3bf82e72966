import { UpshiftError } from '../core/errors.js';
import { type CopyRow, type CopyTableName, type CopyTableSpec } from '../core/storeCopy.js';
import type { Clock } from '../ports/clock.js';
import type { CopyBatch, CopyReader, CopyWriter } from '../ports/storeCopy.js';
import { addCounts, CHILD_TABLES, differing, extra, keysOf, rowsIn, RowRateLimiter, SCAN_TABLES, spec, yieldToIo, type CopyProgress, type RowCounts } from './copyPlan.js';

export interface CopyStoreDeps {
  readonly source: CopyReader;
  readonly target: CopyWriter;
  readonly clock: Clock;
  readonly sleep?: (ms: number) => Promise<void>;
}

export interface CopyStoreOptions {
  /** Identifies the source in the target's checkpoints (the SQLite file's absolute path). */
  readonly sourceId: string;
  /** Jobs (or rows of other tables) per read and write transaction. */
  readonly batchSize: number;
  /** Sustained rows per second over the run; 0 = unlimited. */
  readonly maxRowsPerSecond: number;
  /** Count what a run would write; write nothing (not even checkpoints). */
  readonly dryRun: boolean;
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: CopyProgress) => void;
}

export interface CopyStoreReport {
  readonly mode: 'copy' | 'dry-run';
  readonly completed: boolean;
  /** Per org: rows written by the bulk pass (`copied`) and by the catch-up pass (`caughtUp`); a dry run fills `toCopy`. */
  readonly orgs: Record<string, { copied: RowCounts; caughtUp: RowCounts; removed: RowCounts; toCopy: RowCounts }>;
  /** Source tables the target does not have yet (a newer migration): not copied, verify fails. */
  readonly skippedTables: CopyTableName[];
  readonly resumedFromCheckpoints: number;
  readonly durationMs: number;
}

/**
 * `upshift copy-store`: moves an embedded store into a migrated PostgreSQL store.
 *
 * 1. Bulk pass (skipped by a dry run): per org and scan table, keyset pages of the source in
 *    its own key order, each page (for jobs: with every child row of those jobs, read in one
 *    snapshot) written in ONE target transaction together with the page's checkpoint. A killed
 *    run resumes after the last checkpoint; re-writing a page is harmless (upserts).
 * 2. Catch-up pass: compares every job row, API key, endpoint, outbox entry, notification and
 *    tombstone with the target by key and canonical encoding and re-copies what differs —
 *    a job whose row changed (new events bump last_event_seq, partials bump partial_count, any
 *    transition rewrites status) is re-copied with its events and results. Rows gone from the
 *    source (deleted endpoints, their delivery logs) are deleted. Run after writes stop, it
 *    leaves the target equal to the source; `--verify` proves it.
 * A dry run performs only the comparison and counts the rows the two passes would write.
 */
export async function copyStore(deps: CopyStoreDeps, opts: CopyStoreOptions): Promise<CopyStoreReport> {
  const { source, target, clock } = deps;
  const started = clock.now();
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const limiter = new RowRateLimiter(opts.maxRowsPerSecond, () => clock.now(), sleep);
  if (opts.batchSize < 1) throw new UpshiftError('CONFIG_INVALID', 'batch size must be at least 1');
  await source.checkSchema();
  await target.checkSchema();

  const present = await target.tables();
  const counts = await source.countRows();
  const orgs = await source.listOrgs();
  const skipped = new Set<CopyTableName>();
  for (const perOrg of Object.values(counts)) {
    for (const [table, n] of Object.entries(perOrg) as [CopyTableName, number][]) if (n > 0 && !present.has(table)) skipped.add(table);
  }
  const children = CHILD_TABLES.filter((t) => present.has(t));
  const sumRows = (c: Record<string, RowCounts>, skip: readonly CopyTableName[] = []): number =>
    Object.values(c).reduce((n, perOrg) => n + Object.entries(perOrg).reduce((a, [t, b]) => a + (skip.includes(t as CopyTableName) ? 0 : (b ?? 0)), 0), 0);
  let total = sumRows(counts);
  const report: CopyStoreReport = {
    mode: opts.dryRun ? 'dry-run' : 'copy',
    completed: false,
    orgs: {},
    skippedTables: [...skipped],
    resumedFromCheckpoints: 0,
    durationMs: 0,
  };
  const entry = (org: string) => (report.orgs[org] ??= { copied: {}, caughtUp: {}, removed: {}, toCopy: {} });
  const aborted = (): boolean => opts.signal?.aborted === true;
  let done = 0;
  const progress = (phase: CopyProgress['phase'], org: string, table: CopyTableName, n: number): void => {
    done += n;
    opts.onProgress?.({ phase, org, table, done, total });
  };

  if (!opts.dryRun) {
    const checkpoints = await target.checkpoints(opts.sourceId);
    (report as { resumedFromCheckpoints: number }).resumedFromCheckpoints = checkpoints.length;
    // A resumed run starts its bar where the target already is.
    const already = await target.countRows();
    done = Math.min(total, sumRows(already));
    for (const org of orgs) {
      for (const t of SCAN_TABLES) {
        if (!present.has(t.table)) continue;
        let after = checkpoints.find((c) => c.org === org && c.table === t.table)?.lastKey ?? null;
        const kids = t.table === 'jobs' ? children : [];
        let batch = await source.scan(t.table, org, after, opts.batchSize, kids);
        for (;;) {
          const rows = batch[t.table] ?? [];
          if (rows.length === 0) break;
          after = keysOf(t, rows).at(-1) as string;
          // The page and its checkpoint commit together; the next page is read while it does.
          const writing = target.write(opts.sourceId, org, batch, { org, table: t.table, lastKey: after });
          writing.catch(() => undefined);
          await yieldToIo();
          const next = aborted() ? null : await source.scan(t.table, org, after, opts.batchSize, kids);
          await writing;
          addCounts(entry(org).copied, batch);
          progress('copy', org, t.table, rowsIn(batch));
          await limiter.take(rowsIn(batch));
          if (next === null) return finish();
          batch = next;
        }
      }
    }
  }

  // Fresh statistics for the catch-up's reads and for the first queries after the cut-over.
  if (!opts.dryRun) await target.analyze();

  // Catch-up (or, in a dry run, the plan): compare everything, write only the differences.
  // It walks every row but events and results (those are read only for jobs that changed).
  done = 0;
  total = sumRows(counts, ['job_events', 'job_results']);
  const phase = opts.dryRun ? 'plan' : 'catch-up';
  const sink = (org: string): RowCounts => (opts.dryRun ? entry(org).toCopy : entry(org).caughtUp);
  const apply = async (org: string, batch: CopyBatch): Promise<void> => {
    if (rowsIn(batch) === 0) return;
    addCounts(sink(org), batch);
    if (!opts.dryRun) await target.write(opts.sourceId, org, batch);
  };
  for (const org of orgs) {
    for (const t of SCAN_TABLES) {
      if (!present.has(t.table)) continue;
      const seen: CopyRow[] = [];
      let after: string | null = null;
      const kids = t.table === 'jobs' ? children.filter(mutableChild) : [];
      let src = await source.scan(t.table, org, after, opts.batchSize, kids);
      for (;;) {
        if (aborted()) return finish();
        const rows = src[t.table] ?? [];
        if (rows.length === 0) break;
        after = keysOf(t, rows).at(-1) as string;
        // The target's page is read while the source's next page is.
        const reading = target.read(t.table, org, keysOf(t, rows), kids);
        reading.catch(() => undefined);
        await yieldToIo();
        const next = await source.scan(t.table, org, after, opts.batchSize, kids);
        const tgt = await reading;
        const changed = differing(t, rows, tgt[t.table] ?? []);
        const out: Record<string, CopyRow[]> = {};
        if (t.table === 'jobs') {
          // Mutable children (outbox entries, notifications) change without touching the job row.
          for (const c of children.filter(mutableChild)) {
            out[c] = differing(spec(c), src[c] ?? [], tgt[c] ?? []);
            await removeExtra(org, spec(c), src[c] ?? [], tgt[c] ?? []);
          }
          if (changed.length > 0) Object.assign(out, await changedJobs(org, keysOf(t, changed), children));
        } else {
          out[t.table] = changed;
          if (t.deletable) seen.push(...rows);
        }
        await apply(org, out);
        progress(phase, org, t.table, rowsIn(src));
        await limiter.take(rowsIn(src));
        src = next;
      }
      if (t.deletable) {
        // Scan tables are small per org (endpoints): read the target's whole list for deletions.
        const tgtAll = await readAll(target, t, org, opts.batchSize);
        await removeExtra(org, t, seen, tgtAll);
      }
    }
  }
  (report as { completed: boolean }).completed = true;
  return finish();

  /**
   * Changed or new jobs: re-read with their append-only children (events, results) from the
   * source, in one snapshot, and keep the rows the target lacks. Their mutable children were
   * diffed with the page already.
   */
  async function changedJobs(org: string, jobIds: string[], kids: readonly CopyTableName[]): Promise<CopyBatch> {
    const immutable = kids.filter((c) => !mutableChild(c));
    const src = await source.read('jobs', org, jobIds, immutable);
    const tgt = await target.read('jobs', org, jobIds, immutable);
    const out: Record<string, CopyRow[]> = { jobs: differing(spec('jobs'), src.jobs ?? [], tgt.jobs ?? []) };
    for (const c of immutable) out[c] = differing(spec(c), src[c] ?? [], tgt[c] ?? []);
    return out;
  }

  async function removeExtra(org: string, t: CopyTableSpec, src: readonly CopyRow[], tgt: readonly CopyRow[]): Promise<void> {
    if (!t.deletable) return;
    const keys = extra(t, src, tgt);
    if (keys.length === 0) return;
    const removed = entry(org).removed;
    removed[t.table] = (removed[t.table] ?? 0) + keys.length;
    if (!opts.dryRun) await target.remove(org, t.table, keys);
  }

  function finish(): CopyStoreReport {
    (report as { durationMs: number }).durationMs = clock.now() - started;
    return report;
  }
}

const mutableChild = (c: CopyTableName): boolean => spec(c).mutable;

async function readAll(side: CopyReader, t: CopyTableSpec, org: string, batchSize: number): Promise<CopyRow[]> {
  const out: CopyRow[] = [];
  let after: string | null = null;
  for (;;) {
    const rows: readonly CopyRow[] = (await side.scan(t.table, org, after, batchSize))[t.table] ?? [];
    if (rows.length === 0) return out;
    out.push(...rows);
    after = keysOf(t, rows).at(-1) as string;
  }
}
