import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from './proc.js';

export interface CliRun {
  readonly code: number | null;
  readonly signal: string | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Children get our environment minus any UPSHIFT_* the developer happens to have set. */
const baseEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('UPSHIFT_')));

/**
 * Runs `upshift <args>` (bin/upshift.js, built dist/) as a real process. `killWhen` sees stderr
 * as it arrives (plain progress lines: stderr is no TTY) and SIGKILLs the process once it
 * returns true. UPSHIFT_COPY_TEST_TIMING=1 prints each run's wall time.
 */
export function runUpshift(args: string[], env: Record<string, string> = {}, killWhen?: (stderr: string) => boolean): Promise<CliRun> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'upshift.js'), ...args], { env: { ...baseEnv, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (killWhen?.(stderr)) child.kill('SIGKILL');
    });
    child.on('exit', (code, signal) => {
      if (process.env.UPSHIFT_COPY_TEST_TIMING) console.log(`upshift ${args.filter((a) => a.startsWith('--') && a !== '--to').join(' ')}: ${Date.now() - t0} ms`);
      resolve({ code, signal, stdout, stderr });
    });
  });
}
