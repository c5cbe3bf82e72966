import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { findPromtool, promtool } from '../helpers/promtool.js';

// deploy/grafana/upshift-dashboard.json: valid JSON, the datasource is a variable (never a
// hard-coded uid), every panel query is valid PromQL (checked by promtool as recording rules)
// and uses only metrics Upshift exports or the shipped recording rules define.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const dashboard = JSON.parse(readFileSync(join(ROOT, 'deploy/grafana/upshift-dashboard.json'), 'utf8')) as any;
const recorded = new Set([...readFileSync(join(ROOT, 'deploy/prometheus/recording.rules.yml'), 'utf8').matchAll(/- record: (\S+)/g)].map((m) => m[1]!));
const exported = new Set([...readFileSync(join(ROOT, 'docs/metrics.md'), 'utf8').matchAll(/^\| `(upshift_[a-z_]+)` \|/gm)].map((m) => m[1]!));

const panels = (dashboard.panels as any[]).filter((p) => p.type !== 'row');
const queries: string[] = panels.flatMap((p) => (p.targets as any[]).map((t) => t.expr as string));
/** Grafana variables replaced by what Grafana would send. */
const concrete = (expr: string) => expr.replaceAll('$job', '.*');

describe('Grafana dashboard', () => {
  const tool = findPromtool();
  let dir: string | null = null;
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('takes its datasource from a variable everywhere', () => {
    expect(dashboard.templating.list.find((v: any) => v.name === 'datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    const uids = JSON.stringify(dashboard).match(/"uid":\s*"[^"]*"/g) ?? [];
    expect(uids.filter((u) => !u.includes('${datasource}') && !u.includes('upshift-overview'))).toEqual([]);
    for (const p of panels) {
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      for (const t of p.targets) expect(t.datasource, p.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
    }
  });

  it('has panels for every alert signal, with unique ids and no overlaps in a row', () => {
    const titles = panels.map((p) => p.title as string).join('\n');
    for (const t of ['Permalink 5xx ratio', 'Permalink latency', 'Queue lag', 'Queue depth', 'Worker utilisation', 'Rows deleted per day', 'Retention last exit code', 'Terminal jobs without in-app notification']) {
      expect(titles).toContain(t);
    }
    const ids = (dashboard.panels as any[]).map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of panels) expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
  });

  it('queries only metrics Upshift exports (docs/metrics.md) or the recording rules define', () => {
    expect(exported.size).toBeGreaterThan(10);
    const unknown: string[] = [];
    for (const q of queries) {
      for (const m of q.match(/\bupshift[a-z0-9_:]*/g) ?? []) {
        const base = m.replace(/_(bucket|count|sum)$/, '');
        if (!recorded.has(m) && !exported.has(m) && !exported.has(base)) unknown.push(`${m} in ${q}`);
      }
    }
    expect(unknown).toEqual([]);
  });

  it.runIf(tool.run)('every panel query is valid PromQL (promtool)', () => {
    dir = mkdtempSync(join(tmpdir(), 'upshift-dash-'));
    const rules = queries.map((q, i) => `      - record: dashboard:query_${i}\n        expr: ${JSON.stringify(concrete(q))}`).join('\n');
    writeFileSync(join(dir, 'dashboard.rules.yml'), `groups:\n  - name: dashboard\n    rules:\n${rules}\n`);
    const r = promtool(tool, ['check', 'rules', 'dashboard.rules.yml'], { cwd: dir });
    expect(r.status, r.output).toBe(0);
    expect(r.output).toContain(`SUCCESS: ${queries.length} rules found`);
  });
});
