import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One measurement = one fresh child process printing a single JSON line on stdout. */
export interface Measurement {
  readonly system: string;
  readonly metric: string;
  readonly value: number;
  readonly unit: string;
  readonly extra?: Record<string, number | string>;
}

const here = dirname(fileURLToPath(import.meta.url));

export function runChild(script: string, args: string[], env: Record<string, string> = {}, timeoutMs = 300_000): Promise<Measurement[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(here, script), ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
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
    return { system: first.system, metric: first.metric, unit: first.unit, median: median(v), min: Math.min(...v), max: Math.max(...v), runs: v.length };
  });
}

export function machineInfo(): Record<string, string | number> {
  return { node: process.version, cpus: cpus().length, cpu_model: cpus()[0]?.model ?? 'unknown', mem_gib: Math.round(totalmem() / 2 ** 30), load1: loadavg()[0] ?? 0 };
}

export function writeReport(scenario: string, summaries: Summary[], command: string): string {
  const dir = join(here, '..', '..', 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const info = machineInfo();
  writeFileSync(join(dir, `${scenario}-${stamp}.json`), JSON.stringify({ scenario, command, machine: info, summaries }, null, 2));
  const fmt = (n: number) => (Math.abs(n) >= 100 ? n.toFixed(0) : n.toFixed(2));
  const md = [
    `### ${scenario} — ${new Date().toISOString()}`,
    '',
    `Command: \`${command}\` · Node ${info.node} · ${info.cpus} cores (${info.cpu_model}) · load ${Number(info.load1).toFixed(2)}`,
    '',
    '| system | metric | median | min – max | runs |',
    '|---|---|---:|---|---:|',
    ...summaries.map((s) => `| ${s.system} | ${s.metric} | ${fmt(s.median)} ${s.unit} | ${fmt(s.min)} – ${fmt(s.max)} | ${s.runs} |`),
    '',
  ].join('\n');
  writeFileSync(join(dir, `${scenario}-${stamp}.md`), md);
  return md;
}
