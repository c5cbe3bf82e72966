#!/usr/bin/env node
// The `upshift` command. The CLI is TypeScript compiled to dist/; this shim only finds it.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write(`upshift: ${fileURLToPath(entry)} is missing; run \`npm run build\` first (npm start builds automatically).\n`);
  process.exit(1);
}
const { main } = await import(entry.href);
await main(process.argv.slice(2), process.env);
