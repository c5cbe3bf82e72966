import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CONFIG_KEYS, loadConfig } from '../../src/config/config.js';

// deploy/helm/upshift: no helm binary on the build machine, so this checks what can be checked
// without rendering: the chart's YAML files parse, every .Values path a template reads exists
// in values.yaml, template blocks are balanced, every UPSHIFT_* key the chart sets is a real
// configuration key, and the settings the chart gives each process load as a valid config
// (e.g. trusted-header on 0.0.0.0 would be refused at start). Reading files is the only I/O.
const chart = join(import.meta.dirname, '..', '..', 'deploy', 'helm', 'upshift');
const read = (...p: string[]): string => readFileSync(join(chart, ...p), 'utf8');
const values = parse(read('values.yaml')) as Record<string, unknown>;
const templates = readdirSync(join(chart, 'templates')).map((name) => ({ name, text: read('templates', name) }));

/** The value at a dotted path, or undefined when a segment is missing. */
function at(root: unknown, path: readonly string[]): unknown {
  let v: unknown = root;
  for (const seg of path) {
    if (v === null || typeof v !== 'object' || !(seg in v)) return undefined;
    v = (v as Record<string, unknown>)[seg];
  }
  return v;
}

describe('Helm chart deploy/helm/upshift', () => {
  it('Chart.yaml is a v2 application chart with a version and appVersion', () => {
    const meta = parse(read('Chart.yaml')) as Record<string, unknown>;
    expect(meta).toMatchObject({ apiVersion: 'v2', name: 'upshift', type: 'application' });
    expect(meta.version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(String(meta.appVersion)).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('every .Values path a template reads exists in values.yaml', () => {
    const missing: string[] = [];
    for (const t of templates) {
      for (const m of t.text.matchAll(/\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)/g)) {
        const path = (m[1] as string).slice(1).split('.');
        if (at(values, path) === undefined) missing.push(`${t.name}: .Values.${path.join('.')}`);
      }
      // Per-component templates range over api and worker with `$c := index $.Values $component`.
      if (t.text.includes('index $.Values $component')) {
        for (const m of t.text.matchAll(/\$c((?:\.[A-Za-z_][A-Za-z0-9_]*)+)/g)) {
          const path = (m[1] as string).slice(1).split('.');
          // queueDepth is read only for the worker (guarded by `eq $component "worker"`).
          const components = path.includes('queueDepth') ? ['worker'] : ['api', 'worker'];
          for (const c of components) if (at(values, [c, ...path]) === undefined) missing.push(`${t.name}: .Values.${c}.${path.join('.')}`);
        }
      }
    }
    expect(missing).toEqual([]);
  });

  it('template blocks are balanced (if/range/with/define … end)', () => {
    for (const t of templates) {
      const opens = [...t.text.matchAll(/\{\{-?\s*(if|range|with|define)\b/g)].length;
      const ends = [...t.text.matchAll(/\{\{-?\s*end\s*-?\}\}/g)].length;
      expect({ template: t.name, opens }).toEqual({ template: t.name, opens: ends });
    }
  });

  it('sets only real configuration keys, and each process gets a config that loads', () => {
    const config = values.config as Record<string, unknown>;
    const fromTemplates = templates.flatMap((t) => [...t.text.matchAll(/\b(UPSHIFT_[A-Z0-9_]+)\b/g)].map((m) => m[1] as string));
    for (const key of [...Object.keys(config), ...fromTemplates]) expect(Object.keys(CONFIG_KEYS), key).toContain(key);

    const shared = {
      ...Object.fromEntries(Object.entries(config).map(([k, v]) => [k, String(v)])),
      UPSHIFT_HOST: '0.0.0.0',
      UPSHIFT_DATA_DIR: '/data',
      UPSHIFT_DATABASE_URL: 'postgres://upshift:secret@pg:5432/upshift',
      UPSHIFT_REDIS_URL: 'redis://redis:6379',
    };
    const api = loadConfig({ ...shared, UPSHIFT_PORT: String(at(values, ['api', 'port'])), UPSHIFT_WORKER_ENABLED: 'false' });
    expect(api.port).toBe(8080);
    expect(api.database.kind).toBe('postgres');
    const worker = loadConfig({
      ...shared,
      UPSHIFT_WORKER_CONCURRENCY: String(at(values, ['worker', 'concurrency'])),
      UPSHIFT_HEALTH_PORT: String(at(values, ['worker', 'healthPort'])),
    });
    expect(worker.healthPort).toBe(9090);
    // Kubernetes must wait longer than the worker's drain before it kills the pod.
    expect(Number(at(values, ['worker', 'terminationGracePeriodSeconds'])) * 1000).toBeGreaterThan(worker.worker.shutdownGraceMs);
  });

  it('the Service, monitors, budgets and autoscalers select the pods their Deployments label', () => {
    const text = templates.map((t) => t.text).join('\n');
    for (const component of ['api', 'worker']) {
      expect(read('templates', `deployment-${component}.yaml`)).toContain(`include "upshift.selectorLabels" (list . "${component}")`);
    }
    expect(read('templates', 'service.yaml')).toContain('include "upshift.selectorLabels" (list . "api")');
    expect(read('templates', 'hpa.yaml')).toContain('name: {{ include "upshift.fullname" $ }}-{{ $component }}');
    expect(text).toMatch(/kind: HorizontalPodAutoscaler/);
    expect(text).toMatch(/"helm.sh\/hook": pre-install,pre-upgrade/);
  });
});
