import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';
import { createRunner } from '../../src/cli/runner.js';

// docs/runbook.md must stay runnable: the `upshift retention` flags it uses exist, the metric
// names it cites are exported, and every alert's `runbook:` link lands on one of its headings.
// Reading files is this test's only I/O: the docs and sources are its input.
const root = join(import.meta.dirname, '..', '..');
const runbook = readFileSync(join(root, 'docs', 'runbook.md'), 'utf8');

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
function anchors(markdown: string): Set<string> {
  const out = new Set<string>();
  for (const m of markdown.matchAll(/^#{1,6} (.+)$/gm)) {
    out.add((m[1] as string).trim().toLowerCase().replace(/[^a-z0-9 _-]/g, '').replace(/ /g, '-'));
  }
  return out;
}

describe('docs/runbook.md', () => {
  it('uses only flags `upshift retention` has', () => {
    const io = { env: {}, stdout: process.stdout, stderr: process.stderr };
    const cmd = buildProgram(io, createRunner().run).commands.find((c) => c.name() === 'retention');
    expect(cmd).toBeDefined();
    const known = new Set(cmd!.options.map((o) => o.long));
    // Every `upshift retention …` command, with its backslash-continued lines.
    const commands = runbook.replace(/\\\n/g, ' ').split('\n').filter((l) => /\bupshift retention\b/.test(l) && !l.startsWith('|'));
    expect(commands.length).toBeGreaterThanOrEqual(4);
    const used = new Set(commands.flatMap((l) => [...l.matchAll(/(?<![\w-])--[a-z][a-z-]*/g)].map((m) => m[0])));
    expect([...used].filter((f) => !known.has(f))).toEqual([]);
    for (const required of ['--results-ttl-seconds', '--events-ttl-seconds', '--dry-run', '--output-json', '--store-file']) expect(used).toContain(required);
  });

  it('cites only metrics Upshift exports', () => {
    const telemetry = join(root, 'src', 'adapters', 'telemetry');
    const source = readdirSync(telemetry).map((f) => readFileSync(join(telemetry, f), 'utf8')).join('\n');
    const exported = new Set([...source.matchAll(/name: '(upshift_[a-z_]+)'/g)].map((m) => m[1]));
    const cited = new Set([...runbook.matchAll(/\b(upshift_[a-z_]+?)(?:_count|_bucket|_sum)?\b/g)].map((m) => m[1] as string));
    expect(cited.size).toBeGreaterThanOrEqual(8);
    expect([...cited].filter((m) => !exported.has(m))).toEqual([]);
  });

  it('has the sections the internal links and the shipped alerts point at', () => {
    const have = anchors(runbook);
    const internal = [...runbook.matchAll(/\]\(#([a-z0-9-]+)\)/g)].map((m) => m[1] as string);
    expect(internal.filter((a) => !have.has(a))).toEqual([]);
    const rulesDir = join(root, 'deploy', 'prometheus');
    const rules = existsSync(rulesDir) ? readdirSync(rulesDir).filter((f) => f.endsWith('.yml')).map((f) => readFileSync(join(rulesDir, f), 'utf8')).join('\n') : '';
    const linked = [...rules.matchAll(/runbook: docs\/runbook\.md#([a-z0-9-]+)/g)].map((m) => m[1] as string);
    expect(linked.filter((a) => !have.has(a))).toEqual([]);
    for (const section of ['permalink-errors', 'permalink-latency', 'retention', 'notifications', 'queue-lag', 'smoke-checklist-staging', 'smoke-checklist-production', 'incident-triage']) {
      expect(have, section).toContain(section);
    }
  });
});
