import { Command } from 'commander';
import { addConfigFlags, STORE_FLAG_KEYS } from './configFlags.js';
import { EXIT, type CliIo } from './io.js';
import type { Runner } from './runner.js';
import { withStore } from './storeAccess.js';

export function migrateCommand(io: CliIo, run: Runner): Command {
  return addConfigFlags(new Command('migrate').description('apply pending database migrations (idempotent)'), STORE_FLAG_KEYS).action(
    run(async (opts: Record<string, unknown>) => {
      // STORE_SCHEMA_TOO_NEW (a database from a newer Upshift) surfaces as an UpshiftError → exit 1.
      const { applied } = await withStore(opts, io.env, (store) => store.migrate());
      if (applied.length === 0) io.stdout.write('schema is up to date; no migrations applied\n');
      for (const version of applied) io.stdout.write(`applied ${version}\n`);
      return EXIT.ok;
    }),
  );
}
