import { spawnSync } from 'node:child_process';

/**
 * promtool (Debian package `prometheus`) for the metrics and alert-rule checks. Under CI a
 * missing promtool fails the suite (`.ci/run` installs it); on a developer machine the checks
 * are skipped with a loud banner instead.
 */
export interface Promtool {
  /** Path of the binary, or null when it is not installed. */
  readonly bin: string | null;
  /** True when the checks must run (CI) even though promtool may be missing. */
  readonly required: boolean;
  /** Whether the promtool tests run at all: installed, or required (then they fail). */
  readonly run: boolean;
}

export function findPromtool(): Promtool {
  const bin = process.env.PROMTOOL ?? 'promtool';
  const ok = spawnSync(bin, ['--version'], { encoding: 'utf8' }).status === 0;
  const ci = process.env.CI;
  const required = ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false';
  if (!ok && !required) {
    const line = '!'.repeat(88);
    console.warn(
      `\n${line}\n!!! promtool not found: SKIPPING the promtool checks (metrics exposition, rules, rule unit tests).\n` +
        `!!! Install it: apt-get update && apt-get install -y --no-install-recommends prometheus\n` +
        `!!! Under CI=true these checks fail instead of skipping.\n${line}\n`,
    );
  }
  return { bin: ok ? bin : null, required, run: ok || required };
}

/** Runs promtool; throws a readable error when it is missing (the CI case). */
export function promtool(p: Promtool, args: readonly string[], opts: { input?: string; cwd?: string } = {}) {
  if (p.bin === null) throw new Error('promtool is required under CI (CI=true) but was not found on PATH; install the Debian package "prometheus"');
  const r = spawnSync(p.bin, args, { encoding: 'utf8', input: opts.input, cwd: opts.cwd, timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, output: `${r.stdout}${r.stderr}` };
}
