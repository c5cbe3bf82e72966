// The architecture rules of .dependency-cruiser.cjs must actually fire: `npm run depcheck`
// passing proves nothing if a rule silently matches nothing (e.g. an `exclude` that swallows
// node_modules/*/dist/, or `.js` specifiers that stop resolving to `.ts`). This cruises a small
// generated project with one deliberate violation per rule, in a temp dir (the only I/O).
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cruise, type ICruiseResult } from 'dependency-cruiser';
import extractDepcruiseOptions from 'dependency-cruiser/config-utl/extract-depcruise-options';
import extractTSConfig from 'dependency-cruiser/config-utl/extract-ts-config';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** One file per entry; each violating import is named after the rule it must trip. */
const FILES: Record<string, string> = {
  // A clean layout first: these edges are all allowed.
  'src/core/errors.ts': `export const E = 1;\n`,
  'src/core/ids.ts': `import { randomBytes } from 'node:crypto';\nimport { E } from './errors.js';\nexport const id = () => randomBytes(4).toString('hex') + E;\n`,
  'src/ports/store.ts': `import type { id } from '../core/ids.js';\nexport interface Store { x: typeof id }\n`,
  'src/app/useCase.ts': `import { Ajv } from 'ajv';\nimport type { Store } from '../ports/store.js';\nimport { id } from '../core/ids.js';\nexport const run = (s: Store) => [new Ajv(), s, id()];\n`,
  'src/adapters/store/memStore.ts': `import type { Store } from '../../ports/store.js';\nimport { run } from '../../app/useCase.js';\nexport const mem = (s: Store) => run(s);\n`,
  'src/http/server.ts': `import type { Store } from '../ports/store.js';\nimport { run } from '../app/useCase.js';\nexport const serve = (s: Store) => run(s);\n`,
  'src/cli/main.ts': `import { mem } from '../adapters/store/memStore.js';\nexport const cli = mem;\n`,
  'src/main.ts': `import { mem } from './adapters/store/memStore.js';\nimport { serve } from './http/server.js';\nexport const root = [mem, serve];\n`,

  // Violations.
  'src/core/cycleA.ts': `import { b } from './cycleB.js';\nexport const a = b;\n`,
  'src/core/cycleB.ts': `import type { a } from './cycleA.js';\nexport const b = 1;\nexport type A = typeof a;\n`,
  'src/core/badNpm.ts': `import { Ajv } from 'ajv';\nexport const x = Ajv;\n`,
  'src/core/badLayer.ts': `import type { Store } from '../ports/store.js';\nexport type S = Store;\n`,
  'src/core/badIo.ts': `import { readFileSync } from 'node:fs';\nexport const r = readFileSync;\n`,
  'src/ports/badPort.ts': `import type { run } from '../app/useCase.js';\nexport type R = typeof run;\n`,
  'src/app/badAppNpm.ts': `import pino from 'pino';\nexport const p = pino;\n`,
  'src/app/badAppIo.ts': `import { createServer } from 'node:http';\nexport const c = createServer;\n`,
  'src/adapters/badAdapter.ts': `import { serve } from '../http/server.js';\nexport const s = serve;\n`,
  'src/http/badHttp.ts': `import { mem } from '../adapters/store/memStore.js';\nexport const m = mem;\n`,
  'src/app/badAppToAdapter.ts': `import { mem } from '../adapters/store/memStore.js';\nexport const m = mem;\n`,
  'src/http/badToCli.ts': `import { cli } from '../cli/main.js';\nexport const c = cli;\n`,
  'src/analyzers/badAnalyzer.ts': `import { serve } from '../http/server.js';\nexport const s = serve;\n`,
  'src/app/badUnresolved.ts': `import { nope } from './doesNotExist.js';\nexport const n = nope;\n`,
  'src/app/badDevDep.ts': `import { describe } from 'vitest';\nexport const d = describe;\n`,
};

/** [rule, from, to-substring] expected from FILES, and nothing else. */
const EXPECTED: Array<[string, string, string]> = [
  ['no-circular', 'src/core/cycleA.ts', 'src/core/cycleB.ts'],
  ['core-only-core', 'src/core/badNpm.ts', 'node_modules/ajv/'],
  ['core-only-core', 'src/core/badLayer.ts', 'src/ports/store.ts'],
  ['core-no-io-builtins', 'src/core/badIo.ts', 'fs'],
  ['ports-only-core-ports', 'src/ports/badPort.ts', 'src/app/useCase.ts'],
  ['app-only-core-ports-app', 'src/app/badAppNpm.ts', 'node_modules/pino/'],
  ['app-only-core-ports-app', 'src/app/badAppToAdapter.ts', 'src/adapters/store/memStore.ts'],
  ['app-only-core-ports-app', 'src/app/badDevDep.ts', 'node_modules/vitest/'],
  ['app-only-core-ports-app', 'src/app/badUnresolved.ts', './doesNotExist.js'],
  ['app-no-io-builtins', 'src/app/badAppIo.ts', 'http'],
  ['adapters-not-to-edges', 'src/adapters/badAdapter.ts', 'src/http/server.ts'],
  ['http-not-to-adapters', 'src/http/badHttp.ts', 'src/adapters/store/memStore.ts'],
  ['only-composition-root-to-adapters', 'src/http/badHttp.ts', 'src/adapters/store/memStore.ts'],
  ['only-composition-root-to-adapters', 'src/app/badAppToAdapter.ts', 'src/adapters/store/memStore.ts'],
  ['nothing-to-cli', 'src/http/badToCli.ts', 'src/cli/main.ts'],
  ['analyzers-not-to-edges', 'src/analyzers/badAnalyzer.ts', 'src/http/server.ts'],
  ['not-to-unresolvable', 'src/app/badUnresolved.ts', './doesNotExist.js'],
  ['not-to-dev-dep', 'src/app/badDevDep.ts', 'node_modules/vitest/'],
];

describe('.dependency-cruiser.cjs', () => {
  let dir = '';
  let result: ICruiseResult;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'upshift-arch-'));
    for (const [path, text] of Object.entries(FILES)) {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), text);
    }
    // Same dependency classification (prod vs dev) and TS settings as the real project.
    writeFileSync(
      join(dir, 'package.json'),
      JSON.stringify({ name: 'arch-fixture', type: 'module', dependencies: { ajv: '*', pino: '*' }, devDependencies: { vitest: '*' } }),
    );
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', strict: true }, include: ['src/**/*.ts'] }),
    );
    symlinkSync(join(REPO, 'node_modules'), join(dir, 'node_modules'), 'dir');

    const options = await extractDepcruiseOptions(join(REPO, '.dependency-cruiser.cjs'));
    const tsConfig = extractTSConfig(join(dir, 'tsconfig.json'));
    const out = await cruise(['src'], { ...options, baseDir: dir, outputType: 'json' }, {}, { tsConfig });
    result = (typeof out.output === 'string' ? JSON.parse(out.output) : out.output) as ICruiseResult;
  }, 60_000);

  afterAll(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  it('resolves TypeScript ESM `.js` specifiers to `.ts` files', () => {
    const main = result.modules.find((m) => m.source === 'src/main.ts');
    expect(main?.dependencies.map((d) => d.resolved).sort()).toEqual(['src/adapters/store/memStore.ts', 'src/http/server.ts']);
  });

  it('sees npm packages whose entry lives under dist/', () => {
    const useCase = result.modules.find((m) => m.source === 'src/app/useCase.ts');
    expect(useCase?.dependencies.some((d) => d.module === 'ajv' && d.dependencyTypes.includes('npm'))).toBe(true);
  });

  it('reports exactly the planted violations', () => {
    const got = (result.summary.violations ?? []).map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`).sort();
    const missing = EXPECTED.filter(([rule, from, to]) => !got.some((g) => g.startsWith(`${rule}: ${from} -> `) && g.includes(to)));
    expect(missing, `rules that did not fire:\n${got.join('\n')}`).toEqual([]);
    const unexpected = got.filter(
      (g) => !EXPECTED.some(([rule, from, to]) => g.startsWith(`${rule}: ${from} -> `) && g.includes(to)),
    );
    expect(unexpected).toEqual([]);
  });

  it('lets the clean layout through', () => {
    const clean = Object.keys(FILES).filter((p) => !/\/(bad|cycle)[A-Z]/.test(p));
    const offenders = (result.summary.violations ?? []).filter((v) => clean.includes(v.from));
    expect(offenders).toEqual([]);
  });
});
