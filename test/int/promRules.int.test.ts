import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { findPromtool, promtool } from '../helpers/promtool.js';

// deploy/prometheus: the rules load (`promtool check rules`), their unit tests pass
// (`promtool test rules`), every alert is shown both firing and silent, and the tests
// really pin the SPEC thresholds (a tampered threshold fails them).

const DIR = fileURLToPath(new URL('../../deploy/prometheus/', import.meta.url));
const RULE_FILES = ['recording.rules.yml', 'alerts.rules.yml'];
const TEST_FILES = readdirSync(join(DIR, 'tests')).filter((f) => f.endsWith('.yml')).map((f) => `tests/${f}`);
const alerts = [...readFileSync(join(DIR, 'alerts.rules.yml'), 'utf8').matchAll(/^\s+- alert: (\w+)$/gm)].map((m) => m[1]!);
const tests = TEST_FILES.map((f) => readFileSync(join(DIR, f), 'utf8')).join('\n');

describe('deploy/prometheus rules', () => {
  const tool = findPromtool();
  const temps: string[] = [];
  afterAll(() => {
    for (const d of temps) rmSync(d, { recursive: true, force: true });
  });

  it('has the runbook signals as alerts', () => {
    expect(alerts).toEqual(
      expect.arrayContaining([
        'UpshiftPermalink5xxRateWarning',
        'UpshiftPermalink5xxRateCritical',
        'UpshiftPermalinkLatencyP95Warning',
        'UpshiftPermalinkLatencyP95Critical',
        'UpshiftRetentionFailed',
        'UpshiftRetentionDeletesAnomalous',
        'UpshiftRetentionDeletesStopped',
        'UpshiftTerminalJobsWithoutInAppNotification',
        'UpshiftQueueLagWarning',
        'UpshiftQueueBacklogGrowing',
      ]),
    );
    expect(TEST_FILES.length).toBeGreaterThan(0);
  });

  it('every alert has a promtool test where it fires and one where it stays silent', () => {
    const missing: string[] = [];
    for (const a of alerts) {
      const cases = [...tests.matchAll(new RegExp(`alertname: ${a}\\n\\s+exp_alerts:(.*)\\n(\\s+- exp_labels)?`, 'g'))];
      if (!cases.some((c) => c[1]!.trim().startsWith('[]'))) missing.push(`${a}: no silent case`);
      if (!cases.some((c) => c[2] !== undefined)) missing.push(`${a}: no firing case`);
    }
    expect(missing).toEqual([]);
  });

  it.runIf(tool.run)('`promtool check rules` accepts the rule files', () => {
    const r = promtool(tool, ['check', 'rules', ...RULE_FILES], { cwd: DIR });
    expect(r.status, r.output).toBe(0);
    expect(r.output).toMatch(/SUCCESS: 16 rules found[\s\S]*SUCCESS: 14 rules found/);
  });

  it.runIf(tool.run)('`promtool test rules` passes', () => {
    const r = promtool(tool, ['test', 'rules', ...TEST_FILES], { cwd: DIR });
    expect(r.status, r.output).toBe(0);
    expect(r.output.match(/SUCCESS/g)?.length).toBe(TEST_FILES.length);
  }, 60_000);

  it.runIf(tool.run)('the tests pin the SPEC thresholds: a loosened threshold fails them', () => {
    for (const [from, to] of [
      ['upshift:permalink_5xx_ratio:rate5m > 0.05', 'upshift:permalink_5xx_ratio:rate5m > 0.10'],
      ['upshift:permalink_latency_seconds:p95_5m > 1.2', 'upshift:permalink_latency_seconds:p95_5m > 2'],
      ['upshift:terminal_jobs_without_in_app_notification:max > 0\n        for: 10m', 'upshift:terminal_jobs_without_in_app_notification:max > 0\n        for: 30m'],
    ] as const) {
      const dir = mkdtempSync(join(tmpdir(), 'upshift-rules-'));
      temps.push(dir);
      cpSync(DIR, dir, { recursive: true });
      const file = join(dir, 'alerts.rules.yml');
      const text = readFileSync(file, 'utf8');
      expect(text, from).toContain(from);
      writeFileSync(file, text.replace(from, to));
      const r = promtool(tool, ['test', 'rules', ...TEST_FILES], { cwd: dir });
      expect(r.status, `still passes with ${to}`).not.toBe(0);
      expect(r.output).toContain('FAILED');
    }
  }, 120_000);
});
