import { defineConfig } from 'vitest/config';

// Three tiers (STYLE.md §5): unit = no I/O, int = real SQLite file / PostgreSQL / Redis,
// e2e = real HTTP server and processes. Each file runs in its own forked process.
export default defineConfig({
  test: {
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/**/*.unit.test.ts'] } },
      { extends: true, test: { name: 'int', include: ['test/**/*.int.test.ts'] } },
      { extends: true, test: { name: 'e2e', include: ['test/**/*.e2e.test.ts'], testTimeout: 120_000 } },
    ],
  },
});
