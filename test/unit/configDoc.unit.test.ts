import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_FLAGS } from '../../src/cli/configFlags.js';
import { CONFIG_KEYS } from '../../src/config/config.js';

// docs/configuration.md must list every configuration key with its real default and the
// serve flag that sets it. Reading a file is this test's only I/O: the doc is its input.
const doc = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'configuration.md'), 'utf8');

interface Row {
  readonly key: string;
  readonly defaultValue: string;
  readonly flag: string;
}

/** Rows of the table under `## Keys` (up to the next `## ` heading). */
function keyRows(markdown: string): Row[] {
  const section = /^## Keys\s*$([\s\S]*?)(?=^## |(?![\s\S]))/m.exec(markdown)?.[1];
  if (!section) throw new Error('docs/configuration.md has no "## Keys" section');
  const rows: Row[] = [];
  for (const line of section.split('\n')) {
    const cells = line.split('|').slice(1, -1).map((c) => c.trim());
    const key = /^`((?:UPSHIFT|OTEL)_[A-Z0-9_]+)`$/.exec(cells[0] ?? '')?.[1];
    if (!key) continue;
    rows.push({ key, defaultValue: parseDefault(cells[1] ?? ''), flag: /^`(--[a-z-]+)`$/.exec(cells[2] ?? '')?.[1] ?? '' });
  }
  return rows;
}

function parseDefault(cell: string): string {
  if (cell === '*(empty)*') return '';
  const m = /^`([^`]*)`$/.exec(cell);
  if (!m) throw new Error(`default cell "${cell}" must be \`value\` or *(empty)*`);
  return m[1] as string;
}

const rows = keyRows(doc);
const byKey = new Map(rows.map((r) => [r.key, r]));

describe('docs/configuration.md', () => {
  it('lists every config key exactly once', () => {
    const missing = Object.keys(CONFIG_KEYS).filter((k) => !byKey.has(k));
    expect(missing, `keys missing from docs/configuration.md`).toEqual([]);
    expect(rows.length, 'a key is listed twice').toBe(byKey.size);
  });

  it('lists no key that does not exist', () => {
    const unknown = rows.map((r) => r.key).filter((k) => !(k in CONFIG_KEYS));
    expect(unknown).toEqual([]);
  });

  it('documents the real default of each key', () => {
    const wrong = Object.entries(CONFIG_KEYS)
      .filter(([k, v]) => byKey.has(k) && byKey.get(k)?.defaultValue !== v)
      .map(([k, v]) => `${k}: doc says ${JSON.stringify(byKey.get(k)?.defaultValue)}, code says ${JSON.stringify(v)}`);
    expect(wrong).toEqual([]);
  });

  it('names the serve flag of each key that has one, and no other', () => {
    const expected = Object.fromEntries(Object.keys(CONFIG_KEYS).map((k) => [k, CONFIG_FLAGS.find((f) => f.key === k)?.flags.split(' ')[0] ?? '']));
    const documented = Object.fromEntries(rows.map((r) => [r.key, r.flag]));
    expect(documented).toEqual(expected);
  });

  it('the parser sees a tampered default', () => {
    const tampered = doc.replace('| `UPSHIFT_PORT` | `8080` |', '| `UPSHIFT_PORT` | `9090` |');
    expect(keyRows(tampered).find((r) => r.key === 'UPSHIFT_PORT')?.defaultValue).toBe('9090');
    const dropped = doc.replace(/^\| `UPSHIFT_POLL_MS`.*$/m, '');
    expect(keyRows(dropped).some((r) => r.key === 'UPSHIFT_POLL_MS')).toBe(false);
  });
});
