#!/usr/bin/env node
// The `upshift` command. The CLI is TypeScript compiled to dist/; this shim only finds it.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write(`upshift: ${fileURLToPath(entry)} is missing; run \`npm run build\` first (npm start builds automatically).\n`);
  process.exit(1);
}
// The long-running commands (serve, api, worker) relaunch with Upshift's Node flags
// (src/cli/nodeFlags.ts, docs/configuration.md "Node flags") unless this process has them or the
// operator set them (command line or NODE_OPTIONS). process.execve replaces this process, so the
// pid stays the one a supervisor, a signal or a test's kill -9 knows; Node versions without it
// (< 22.15 / 23.11) and Windows run with Node's own defaults. Short commands (jobs, keys, migrate, …) start as they are.
const { canExecve, relaunchFlags, RELAUNCHED_ENV } = await import(new URL('../dist/src/cli/nodeFlags.js', import.meta.url).href);
const add = relaunchFlags(process.argv[2], process.execArgv, process.env, (f) => process.allowedNodeEnvironmentFlags.has(f));
delete process.env[RELAUNCHED_ENV];
if (add.length > 0 && canExecve(process.execve, process.platform)) {
  process.execve(process.execPath, [process.execPath, ...add, ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], { ...process.env, [RELAUNCHED_ENV]: '1' });
}
const { main } = await import(entry.href);
await main(process.argv.slice(2), process.env);
