// Architecture rules (docs: STYLE.md §1). `npm run depcheck` fails on any "error" below.
//
//   core      pure domain: imports only core and non-I/O node builtins (node:crypto); no npm
//   ports     interfaces: imports only core and ports
//   app       use cases: core, ports, app, plus a few small pure npm libraries (APP_NPM_ALLOWED)
//   adapters  may import core/ports/app (and drivers), never http/cli/main
//   http      gets ports injected: never imports adapters
//   main.ts   composition root; with src/cli the only importers of adapters
//   cli       imported by nothing in src (bin/ is its only importer)
//   ui        (the browser UI) imports only ui/: it reaches the server through the HTTP API
//
// Type-only imports count: a type import still couples the layers.

/** Small, pure npm libraries the use cases may depend on. Extend deliberately. */
const APP_NPM_ALLOWED = ['ajv', 'ajv-formats', '@sinclair/typebox'];

/** Node builtins that do I/O or touch the process; core and app must stay free of them. */
const IO_BUILTINS = [
  'fs', 'fs/promises', 'net', 'http', 'https', 'http2', 'tls', 'dgram', 'dns', 'dns/promises',
  'child_process', 'cluster', 'worker_threads', 'process', 'os', 'readline', 'repl', 'v8', 'vm',
  'inspector', 'perf_hooks', 'timers', 'timers/promises', 'stream', 'stream/promises', 'module',
];

const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
const ioBuiltins = `^(node:)?(${IO_BUILTINS.map(escapeRe).join('|')})$`;
const npmPath = (names) => `(^|/)node_modules/(${names.map(escapeRe).join('|')})/`;

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Import cycles make load order fragile and blur the layers.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment: 'An import that does not resolve: a typo, or a package missing from package.json.',
      from: {},
      to: { couldNotResolve: true },
    },
    {
      name: 'no-non-package-json',
      severity: 'error',
      comment: 'An npm package used by src/ must be listed in package.json dependencies.',
      from: {},
      to: { dependencyTypes: ['npm-no-pkg', 'npm-unknown'] },
    },
    {
      name: 'not-to-dev-dep',
      severity: 'error',
      comment: 'src/ ships: it may not need devDependencies at run time (type-only imports are fine).',
      from: { path: '^src/' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'], pathNot: ['node_modules/@types/'] },
    },
    {
      name: 'core-only-core',
      severity: 'error',
      comment: 'src/core is pure: it imports only src/core (and non-I/O node builtins).',
      from: { path: '^src/core/' },
      to: { pathNot: ['^src/core/'], dependencyTypesNot: ['core'] },
    },
    {
      name: 'core-no-io-builtins',
      severity: 'error',
      comment: 'src/core does no I/O: no fs, net, process, timers… (node:crypto is fine).',
      from: { path: '^src/core/' },
      to: { dependencyTypes: ['core'], path: ioBuiltins },
    },
    {
      name: 'ports-only-core-ports',
      severity: 'error',
      comment: 'src/ports declares interfaces in terms of core types only.',
      from: { path: '^src/ports/' },
      to: { pathNot: ['^src/(core|ports)/'], dependencyTypesNot: ['core'] },
    },
    {
      name: 'app-only-core-ports-app',
      severity: 'error',
      comment: `src/app (use cases) imports core, ports, app and only these npm libraries: ${APP_NPM_ALLOWED.join(', ')}.`,
      from: { path: '^src/app/' },
      to: { pathNot: ['^src/(core|ports|app)/', npmPath(APP_NPM_ALLOWED)], dependencyTypesNot: ['core'] },
    },
    {
      name: 'app-no-io-builtins',
      severity: 'error',
      comment: 'src/app reaches the outside world through ports only.',
      from: { path: '^src/app/' },
      to: { dependencyTypes: ['core'], path: ioBuiltins },
    },
    {
      name: 'adapters-not-to-edges',
      severity: 'error',
      comment: 'Adapters implement ports; they never reach up into http, cli or the composition root.',
      from: { path: '^src/adapters/' },
      to: { path: ['^src/(http|cli)/', '^src/main\\.ts$', '^src/index\\.ts$'] },
    },
    {
      name: 'ui-only-ui',
      severity: 'error',
      comment: 'ui/ runs in the browser and talks to the HTTP API only: it imports nothing outside ui/.',
      from: { path: '^ui/' },
      to: { pathNot: '^ui/' },
    },
    {
      name: 'http-not-to-adapters',
      severity: 'error',
      comment: 'src/http gets its ports injected by the composition root; it never picks an adapter.',
      from: { path: '^src/http/' },
      to: { path: '^src/adapters/' },
    },
    {
      name: 'only-composition-root-to-adapters',
      severity: 'error',
      comment: 'Only src/main.ts (and src/cli) choose adapters; everything else depends on ports.',
      from: { path: '^src/', pathNot: ['^src/main\\.ts$', '^src/cli/', '^src/adapters/'] },
      to: { path: '^src/adapters/' },
    },
    {
      name: 'nothing-to-cli',
      severity: 'error',
      comment: 'src/cli is an entry point: only bin/ imports it.',
      from: { path: '^src/', pathNot: '^src/cli/' },
      to: { path: '^src/cli/' },
    },
    {
      name: 'analyzers-not-to-edges',
      severity: 'error',
      comment: 'Built-in analyzers implement the core analyzer contract; they know no adapter, http or cli.',
      from: { path: '^src/analyzers/' },
      to: { path: ['^src/(adapters|http|cli)/', '^src/main\\.ts$'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: ['^dist/'] },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    // ESM TypeScript: `./x.js` specifiers resolve to `./x.ts` (dependency-cruiser does the
    // .js -> .ts mapping itself once TypeScript is in play); honour package "exports".
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
      extensions: ['.ts', '.js', '.mjs', '.cjs', '.json', '.d.ts'],
    },
    skipAnalysisNotInRules: true,
    reporterOptions: {
      text: { highlightFocused: true },
    },
  },
};
