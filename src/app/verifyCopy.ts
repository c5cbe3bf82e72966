import { COPY_TABLES, RowChecksum, type CopyTableName } from '../core/storeCopy.js';
import type { CopyReader } from '../ports/storeCopy.js';
import { CHILD_TABLES, keysOf, SCAN_TABLES, yieldToIo, type CopyProgress } from './copyPlan.js';

export interface VerifyRow {
  readonly org: string;
  readonly table: CopyTableName;
  readonly sourceRows: number;
  readonly targetRows: number;
  readonly sourceChecksum: string;
  readonly targetChecksum: string;
  readonly ok: boolean;
}

export interface VerifyReport {
  readonly mode: 'verify';
  readonly ok: boolean;
  readonly rows: VerifyRow[];
  readonly durationMs: number;
}

interface Side {
  readonly counts: Record<string, Partial<Record<CopyTableName, number>>>;
  readonly sums: Map<string, RowChecksum>;
}

/**
 * `upshift copy-store --verify`: for every org and table, the row count and the order-independent
 * checksum (src/core/storeCopy.ts) of the source and of the target, each side read on its own
 * by the same code. Counts come from a GROUP BY over the whole table, checksums from walking the
 * org's rows (children by job), so a row the walk cannot reach (a child without its job) shows
 * up as a count that disagrees with the number of rows hashed: that marks the table not ok too.
 */
export async function verifyCopy(
  deps: { readonly source: CopyReader; readonly target: CopyReader; readonly now: () => number },
  opts: { readonly batchSize: number; readonly signal?: AbortSignal; readonly onProgress?: (p: CopyProgress) => void },
): Promise<VerifyReport> {
  const started = deps.now();
  await deps.source.checkSchema();
  await deps.target.checkSchema();
  const orgs = [...new Set([...(await deps.source.listOrgs()), ...(await deps.target.listOrgs())])].sort();
  const srcCounts = await deps.source.countRows();
  const total = Object.values(srcCounts).reduce((n, perOrg) => n + Object.values(perOrg).reduce((a, b) => a + (b ?? 0), 0), 0) * 2;
  let done = 0;
  const walk = async (side: CopyReader, counts: Side['counts']): Promise<Side> => {
    const sums = new Map<string, RowChecksum>();
    const sum = (org: string, table: CopyTableName): RowChecksum => {
      const k = `${org}\u0000${table}`;
      let s = sums.get(k);
      if (!s) sums.set(k, (s = new RowChecksum()));
      return s;
    };
    for (const org of orgs) {
      for (const t of SCAN_TABLES) {
        let after: string | null = null;
        for (;;) {
          if (opts.signal?.aborted) throw new Error('verification interrupted');
          const batch = await side.scan(t.table, org, after, opts.batchSize, t.table === 'jobs' ? CHILD_TABLES : []);
          const rows = batch[t.table] ?? [];
          if (rows.length === 0) break;
          after = keysOf(t, rows).at(-1) as string;
          let n = 0;
          for (const spec of COPY_TABLES) {
            for (const row of batch[spec.table] ?? []) sum(org, spec.table).add(spec, row);
            n += batch[spec.table]?.length ?? 0;
          }
          done += n;
          opts.onProgress?.({ phase: 'verify', org, table: t.table, done, total });
          // Both sides are walked at once: let the other side's replies in between two pages.
          await yieldToIo();
        }
      }
    }
    return { counts, sums };
  };
  const [src, tgt] = await Promise.all([walk(deps.source, srcCounts), deps.target.countRows().then((counts) => walk(deps.target, counts))]);
  const rows: VerifyRow[] = [];
  for (const org of orgs) {
    for (const t of COPY_TABLES) {
      const s = src.sums.get(`${org}\u0000${t.table}`) ?? new RowChecksum();
      const g = tgt.sums.get(`${org}\u0000${t.table}`) ?? new RowChecksum();
      const sourceRows = src.counts[org]?.[t.table] ?? 0;
      const targetRows = tgt.counts[org]?.[t.table] ?? 0;
      if (sourceRows === 0 && targetRows === 0) continue;
      const ok = sourceRows === targetRows && s.hex === g.hex && s.count === sourceRows && g.count === targetRows;
      rows.push({ org, table: t.table, sourceRows, targetRows, sourceChecksum: s.hex, targetChecksum: g.hex, ok });
    }
  }
  return { mode: 'verify', ok: rows.every((r) => r.ok), rows, durationMs: deps.now() - started };
}
