import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UPSHIFT_NODE_FLAGS } from '../src/cli/nodeFlags.js';

/** One measurement = one fresh child process printing a single JSON line on stdout. */
export interface Measurement {
  readonly system: string;
  readonly metric: string;
  readonly value: number;
  readonly unit: string;
  readonly extra?: Record<string, number | string>;
}

const here = dirname(fileURLToPath(import.meta.url));

export interface ChildOptions {
  /** Added to this process's environment. */
  readonly env?: Record<string, string>;
  /** SIGKILL after this long (default 300 s). */
  readonly timeoutMs?: number;
  /** Node flags of the child (Upshift's processes run with upshiftNodeFlags()). */
  readonly execArgv?: readonly string[];
}

export function runChild(script: string, args: string[], { env = {}, timeoutMs = 300_000, execArgv = [] }: ChildOptions = {}): Promise<Measurement[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...execArgv, join(here, script), ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`${script} ${args.join(' ')} exited ${code}`));
      const lines = out.trim().split('\n').filter((l) => l.startsWith('{'));
      resolve(lines.map((l) => JSON.parse(l) as Measurement));
    });
  });
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx] as number;
}

export interface Summary {
  readonly system: string;
  readonly metric: string;
  readonly unit: string;
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly runs: number;
  /** Runs that hit their time bound before every job finished (value = what was counted). */
  readonly incompleteRuns?: number;
}

export function summarise(all: Measurement[]): Summary[] {
  const groups = new Map<string, Measurement[]>();
  for (const m of all) {
    const k = `${m.system}\u0000${m.metric}`;
    groups.set(k, [...(groups.get(k) ?? []), m]);
  }
  return [...groups.values()].map((ms) => {
    const v = ms.map((m) => m.value);
    const first = ms[0] as Measurement;
    const incompleteRuns = ms.filter((m) => Number(m.extra?.incomplete ?? 0) > 0).length;
    return { system: first.system, metric: first.metric, unit: first.unit, median: median(v), min: Math.min(...v), max: Math.max(...v), runs: v.length, ...(incompleteRuns ? { incompleteRuns } : {}) };
  });
}

export function machineInfo(): Record<string, string | number> {
  const [l1 = 0, l5 = 0, l15 = 0] = loadavg();
  return { node: process.version, cpus: cpus().length, cpu_model: cpus()[0]?.model ?? 'unknown', mem_gib: Math.round(totalmem() / 2 ** 30), load1: l1, load5: l5, load15: l15 };
}

export interface Ratio {
  readonly metric: string;
  readonly peer: string;
  readonly base: number;
  readonly peerValue: number;
  readonly unit: string;
  /** base / peer, both medians of the same run. */
  readonly ratio: number;
  readonly peerIncomplete: boolean;
}

/** Ratios `base`/peer for every metric both measured, from the medians of one run. */
export function ratios(summaries: Summary[], base: string): Ratio[] {
  const out: Ratio[] = [];
  for (const b of summaries.filter((s) => s.system === base)) {
    for (const p of summaries.filter((s) => s.system !== base && s.metric === b.metric)) {
      out.push({ metric: b.metric, peer: p.system, base: b.median, peerValue: p.median, unit: b.unit, ratio: b.median / p.median, peerIncomplete: (p.incompleteRuns ?? 0) > 0 });
    }
  }
  return out;
}

export function writeReport(scenario: string, summaries: Summary[], command: string, base?: string, failures: string[] = [], loadAtStart?: number[], notes: string[] = []): string {
  const dir = join(here, '..', '..', 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const info = machineInfo();
  writeFileSync(join(dir, `${scenario}-${stamp}.json`), JSON.stringify({ scenario, command, machine: info, load_at_start: loadAtStart, summaries, ratios: base ? ratios(summaries, base) : [], failures, notes }, null, 2));
  // A failed measurement can leave a value null/NaN (JSON has no NaN): report it, never crash
  // the report writer and lose the other systems' results.
  const fmt = (n: number | null | undefined) => (typeof n !== 'number' || !Number.isFinite(n) ? 'n/a' : Math.abs(n) >= 100 ? n.toFixed(0) : n.toFixed(2));
  const lines = [
    `### ${scenario} — ${new Date().toISOString()}`,
    '',
    `Command: \`${command}\` · Node ${info.node} · ${info.cpus} cores (${info.cpu_model}) · load ${Number(info.load1).toFixed(2)} / ${Number(info.load5).toFixed(2)} / ${Number(info.load15).toFixed(2)} (1/5/15 min, at the end)${loadAtStart ? `; at the start ${loadAtStart.map((l) => l.toFixed(2)).join(' / ')}` : ''}`,
    '',
    '| system | metric | median | min – max | runs |',
    '|---|---|---:|---|---:|',
    ...summaries.map((s) => `| ${s.system} | ${s.metric} | ${fmt(s.median)} ${s.unit}${s.incompleteRuns ? ' †' : ''} | ${fmt(s.min)} – ${fmt(s.max)} | ${s.runs}${s.incompleteRuns ? ` (${s.incompleteRuns} hit the time bound)` : ''} |`),
    '',
  ];
  if (summaries.some((s) => s.incompleteRuns)) {
    lines.push('† at least one run hit its time bound before all jobs finished: throughput = jobs completed / elapsed; latency percentiles count unfinished jobs at their age when the run stopped (a lower bound).', '');
  }
  const rs = base ? ratios(summaries, base) : [];
  if (rs.length) {
    lines.push(
      `Ratios ${base} / peer (medians of this run; for jobs/s higher is better for ${base}, for ms lower is better):`,
      '',
      `| metric | peer | ${base} | peer | ratio |`,
      '|---|---|---:|---:|---:|',
      ...rs.map((r) => `| ${r.metric} | ${r.peer} | ${fmt(r.base)} ${r.unit} | ${fmt(r.peerValue)} ${r.unit}${r.peerIncomplete ? ' †' : ''} | ${typeof r.ratio !== 'number' || !Number.isFinite(r.ratio) ? 'n/a' : r.ratio >= 0.1 ? r.ratio.toFixed(2) + '×' : r.ratio.toPrecision(2) + '×'} |`),
      '',
    );
  }
  if (notes.length) lines.push('Notes:', '', ...notes.map((n) => `- ${n}`), '');
  if (failures.length) lines.push('Failed measurements (not in the table):', '', ...failures.map((f) => `- ${f}`), '');
  const md = lines.join('\n');
  writeFileSync(join(dir, `${scenario}-${stamp}.md`), md);
  return md;
}

/**
 * The Node flags Upshift's own processes run with — those `bin/upshift.js` starts every Upshift
 * process with (src/cli/nodeFlags.ts) — so the bench measures Upshift as it runs. Peers run with
 * Node's defaults. BENCH_UPSHIFT_NODE_FLAGS=none runs Upshift with Node's defaults too (A/B).
 */
export function upshiftNodeFlags(): readonly string[] {
  return process.env.BENCH_UPSHIFT_NODE_FLAGS === 'none' ? [] : UPSHIFT_NODE_FLAGS;
}
