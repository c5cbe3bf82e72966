import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import cliProgress from 'cli-progress';
import { Command } from 'commander';
import { createPostgresCopyTarget } from '../adapters/store/postgres/postgresCopyTarget.js';
import { createSqliteCopySource } from '../adapters/store/sqlite/sqliteCopySource.js';
import type { CopyProgress } from '../app/copyPlan.js';
import { copyStore, type CopyStoreReport } from '../app/copyStore.js';
import { verifyCopy, type VerifyReport } from '../app/verifyCopy.js';
import { systemClock } from '../ports/clock.js';
import { CliError, EXIT, intFlag, type CliIo } from './io.js';
import type { Runner } from './runner.js';

interface CopyStoreFlags {
  readonly from: string;
  readonly to: string;
  readonly schema: string;
  readonly batchSize: string;
  readonly maxRowsPerSecond: string;
  readonly dryRun?: boolean;
  readonly verify?: boolean;
  readonly outputJson?: string;
  readonly progress: boolean;
}

/**
 * `upshift copy-store --from sqlite:<file> --to postgres://…`: the MVP → scale move
 * (docs/migrating-to-scale.md). Exit 0 when the copy completed or the verification matched;
 * 1 on a mismatch, an interruption or a store error; 2 for bad flags.
 */
export function copyStoreCommand(io: CliIo, run: Runner): Command {
  return new Command('copy-store')
    .description('copy an embedded (SQLite) store into a migrated PostgreSQL store: resumable, idempotent, verifiable')
    .requiredOption('--from <sqlite:file>', 'the embedded store, sqlite:<path> (opened read-only; the server may keep serving)')
    .requiredOption('--to <postgres-url>', 'the PostgreSQL database, migrated beforehand with `upshift migrate --database <url>`')
    .option('--schema <name>', 'the PostgreSQL schema of the store', 'upshift')
    .option('--batch-size <n>', 'jobs (or rows of other tables) per read and write transaction', '500')
    .option('--max-rows-per-second <n>', 'sustained rows per second over the run, 0 = unlimited', '0')
    .option('--dry-run', 'count what would be copied (compares both sides), write nothing')
    .option('--verify', 'compare per-tenant row counts and checksums of both sides; exit 1 on any mismatch')
    .option('--output-json <file>', 'also write the JSON report to this file (parent folders are created)')
    .option('--no-progress', 'no progress bar or progress lines')
    .action(run((opts: CopyStoreFlags) => copyStoreAction(opts, io)));
}

async function copyStoreAction(opts: CopyStoreFlags, io: CliIo): Promise<number> {
  const file = parseFrom(opts.from);
  if (!/^postgres(ql)?:\/\//.test(opts.to)) throw new CliError(`--to must be a postgres://… URL, got ${JSON.stringify(redact(opts.to))}`, EXIT.usage);
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(opts.schema)) throw new CliError(`--schema must match [a-z_][a-z0-9_]{0,62}, got ${JSON.stringify(opts.schema)}`, EXIT.usage);
  const batchSize = intFlag('--batch-size', opts.batchSize, 1, 100_000);
  const maxRowsPerSecond = intFlag('--max-rows-per-second', opts.maxRowsPerSecond, 0, 100_000_000);
  if (opts.dryRun && opts.verify) throw new CliError('give either --dry-run or --verify, not both', EXIT.usage);
  // Opening read-only never creates a file, but say which path was wrong before connecting anywhere.
  if (!existsSync(file)) throw new CliError(`store file ${file} does not exist (check --from)`);
  const output = opts.outputJson === undefined ? null : resolve(opts.outputJson);
  if (output) mkdirSync(dirname(output), { recursive: true });

  const source = createSqliteCopySource(file);
  const target = createPostgresCopyTarget({ url: opts.to, schema: opts.schema });
  const abort = new AbortController();
  const onSignal = (): void => abort.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const view = opts.progress ? progressView(io.stderr) : null;
  let report: CopyStoreReport | VerifyReport;
  try {
    const onProgress = view ? (p: CopyProgress) => view.update(p) : undefined;
    report = opts.verify
      ? await verifyCopy({ source, target, now: () => systemClock.now() }, { batchSize, signal: abort.signal, ...(onProgress && { onProgress }) })
      : await copyStore(
          { source, target, clock: systemClock },
          { sourceId: file, batchSize, maxRowsPerSecond, dryRun: opts.dryRun === true, signal: abort.signal, ...(onProgress && { onProgress }) },
        );
  } finally {
    view?.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await source.close();
    await target.close();
  }
  const full = { source: file, target: { url: redact(opts.to), schema: opts.schema }, ...report };
  io.stdout.write(report.mode === 'verify' ? verifyTable(report) : copySummary(report));
  if (output) {
    try {
      // Write-then-rename: a reader never sees half a report.
      const tmp = `${output}.${process.pid}.tmp`;
      writeFileSync(tmp, `${JSON.stringify(full, null, 2)}\n`);
      renameSync(tmp, output);
    } catch (e) {
      throw new CliError(`cannot write the report to ${output}: ${(e as Error).message}`);
    }
  }
  if (report.mode === 'verify') {
    if (!report.ok) throw new CliError(`verification FAILED: ${report.rows.filter((r) => !r.ok).length} org/table pair(s) differ`);
    return EXIT.ok;
  }
  if (!report.completed) throw new CliError('copy-store was interrupted; run the same command again to resume from its checkpoints');
  if (report.skippedTables.length > 0) {
    throw new CliError(`the target has no table(s) ${report.skippedTables.join(', ')} that the source has rows in; migrate the target with this Upshift version`);
  }
  return EXIT.ok;
}

function parseFrom(raw: string): string {
  const m = /^sqlite:(.+)$/.exec(raw.trim());
  if (!m?.[1]) throw new CliError(`--from must be sqlite:<path>, got ${JSON.stringify(raw)}`, EXIT.usage);
  return resolve(m[1]);
}

const redact = (url: string): string => url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');

/** A bar on a terminal; otherwise a plain line per org/table/phase change and at most one a second. */
function progressView(out: NodeJS.WritableStream & { readonly isTTY?: boolean }): { update(p: CopyProgress): void; stop(): void } {
  if (out.isTTY) {
    const bar = new cliProgress.SingleBar(
      { stream: out, format: '{phase} {bar} {percentage}% | {value}/{total} rows | {org} {table}', hideCursor: true, barsize: 30, fps: 10 },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    return {
      update(p) {
        if (!started) bar.start(p.total, 0, { phase: p.phase, org: p.org, table: p.table });
        started = true;
        bar.setTotal(Math.max(p.total, p.done));
        bar.update(p.done, { phase: p.phase, org: p.org, table: p.table });
      },
      stop: () => (started ? bar.stop() : undefined),
    };
  }
  let last = '';
  let lastAt = 0;
  return {
    update(p) {
      const where = `${p.phase} ${p.org} ${p.table}`;
      const now = Date.now();
      if (where === last && now - lastAt < 1000) return;
      last = where;
      lastAt = now;
      out.write(`copy-store: ${where}: ${p.done}/${p.total} rows\n`);
    },
    stop() {},
  };
}

function copySummary(r: CopyStoreReport): string {
  const lines = [`copy-store ${r.mode}: ${r.completed ? 'completed' : 'INTERRUPTED'} in ${(r.durationMs / 1000).toFixed(1)} s (resumed from ${r.resumedFromCheckpoints} checkpoints)`];
  const head = r.mode === 'dry-run' ? ['org', 'table', 'to copy', 'to remove'] : ['org', 'table', 'copied', 'caught up', 'removed'];
  const body: string[][] = [];
  for (const [org, e] of Object.entries(r.orgs)) {
    const tables = new Set([...Object.keys(e.copied), ...Object.keys(e.caughtUp), ...Object.keys(e.removed), ...Object.keys(e.toCopy)]);
    for (const t of [...tables].sort()) {
      const k = t as keyof typeof e.copied;
      body.push(
        r.mode === 'dry-run'
          ? [org, t, String(e.toCopy[k] ?? 0), String(e.removed[k] ?? 0)]
          : [org, t, String(e.copied[k] ?? 0), String(e.caughtUp[k] ?? 0), String(e.removed[k] ?? 0)],
      );
    }
  }
  if (r.skippedTables.length > 0) lines.push(`NOT copied (missing in the target): ${r.skippedTables.join(', ')}`);
  return `${lines.join('\n')}\n${table(head, body)}`;
}

function verifyTable(r: VerifyReport): string {
  const body = r.rows.map((x) => [x.org, x.table, String(x.sourceRows), String(x.targetRows), x.sourceChecksum.slice(0, 16), x.targetChecksum.slice(0, 16), x.ok ? 'ok' : 'MISMATCH']);
  return `${table(['org', 'table', 'source rows', 'target rows', 'source checksum', 'target checksum', ''], body)}verify: ${r.ok ? 'OK' : 'MISMATCH'} (${r.rows.length} org/table pairs, ${(r.durationMs / 1000).toFixed(1)} s)\n`;
}

function table(head: string[], body: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => (row[i] ?? '').length)));
  const fmt = (row: string[]): string => row.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [fmt(head), ...body.map(fmt)].map((l) => `${l}\n`).join('');
}
