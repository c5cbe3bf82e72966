import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import type { Env } from '../config/config.js';
import { copyStoreCommand } from './copyStore.js';
import { EXIT, reportError, type CliIo } from './io.js';
import { jobsCommand } from './jobs.js';
import { keysCommand } from './keys.js';
import { migrateCommand } from './migrate.js';
import { projectionsCommand } from './projections.js';
import { retentionCommand } from './retention.js';
import { createRunner } from './runner.js';
import { serveCommand } from './serve.js';

/**
 * The `upshift` command line: thin commands over the composition root (serve, migrate,
 * keys) and an HTTP client (jobs). Exit codes: 0 ok, 1 failure, 2 usage or configuration
 * error, 3 job canceled (jobs wait / submit --wait).
 */
export function buildProgram(io: CliIo, run: ReturnType<typeof createRunner>['run']): Command {
  const program = new Command('upshift')
    .description('Multi-tenant async job runtime and server')
    .version(packageVersion(), '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .exitOverride();
  program.addCommand(serveCommand(io, run));
  program.addCommand(serveCommand(io, run, 'api'));
  program.addCommand(serveCommand(io, run, 'worker'));
  program.addCommand(migrateCommand(io, run));
  program.addCommand(keysCommand(io, run));
  program.addCommand(retentionCommand(io, run));
  program.addCommand(copyStoreCommand(io, run));
  program.addCommand(projectionsCommand(io, run));
  program.addCommand(jobsCommand(io, run));
  // Subcommands inherit output and exit handling only when set on each of them.
  const configure = (cmd: Command): void => {
    for (const sub of cmd.commands) {
      sub.configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) }).exitOverride();
      sub.showHelpAfterError('(run with --help for usage)');
      configure(sub);
    }
  };
  configure(program);
  return program;
}

/** Runs one invocation and resolves with its exit code; never exits the process itself. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const runner = createRunner();
  const program = buildProgram(io, runner.run);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return runner.exitCode();
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version are successes; everything else commander rejects is a usage error.
      return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    return reportError(io, e);
  }
}

/** Entry point of bin/upshift.js. */
export async function main(argv: readonly string[], env: Env): Promise<never> {
  const code = await runCli(argv, { env, stdout: process.stdout, stderr: process.stderr });
  // Exit explicitly: idle keep-alive sockets or a draining pool must not hold the CLI open.
  process.exit(code);
}

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}
