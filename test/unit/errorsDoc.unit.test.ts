// docs/errors.md must list exactly the catalogue's codes, each with the status the HTTP layer
// answers (STYLE.md §2). Reading a file in the repo is the one "I/O" this unit test does.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE, ERROR_CODES } from '../../src/core/errors.js';
import { HTTP_STATUS_BY_CODE } from '../../src/http/errorStatus.js';

const DOC = fileURLToPath(new URL('../../docs/errors.md', import.meta.url));

interface DocRow {
  readonly code: string;
  readonly status: number;
  readonly meaning: string;
  readonly line: number;
}

/** Rows of the shape `| \`CODE\` | 404 | meaning |`; any other table row mentioning a code is an error. */
function parseDoc(text: string): { rows: DocRow[]; malformed: string[] } {
  const rows: DocRow[] = [];
  const malformed: string[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line.startsWith('|') || !/`[A-Z][A-Z0-9_]*`/.test(line.split('|')[1] ?? '')) return;
    const m = /^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|\s*(\d{3})\s*\|\s*(.*?)\s*\|$/.exec(line);
    if (m === null) {
      malformed.push(`line ${i + 1}: ${line}`);
      return;
    }
    rows.push({ code: m[1]!, status: Number(m[2]), meaning: m[3]!, line: i + 1 });
  });
  return { rows, malformed };
}

describe('docs/errors.md', () => {
  const { rows, malformed } = parseDoc(readFileSync(DOC, 'utf8'));
  const documented = rows.map((r) => r.code);

  it('has only well-formed code rows', () => {
    expect(malformed).toEqual([]);
    expect(rows.length).toBeGreaterThan(0);
  });

  it('documents every catalogue code', () => {
    const missing = ERROR_CODES.filter((c) => !documented.includes(c));
    expect(missing, 'codes in ERROR_CATALOGUE but not in docs/errors.md').toEqual([]);
  });

  it('documents no code outside the catalogue', () => {
    const unknown = documented.filter((c) => !Object.hasOwn(ERROR_CATALOGUE, c));
    expect(unknown, 'codes in docs/errors.md but not in ERROR_CATALOGUE').toEqual([]);
  });

  it('documents each code once', () => {
    const dupes = documented.filter((c, i) => documented.indexOf(c) !== i);
    expect(dupes).toEqual([]);
  });

  it('gives each code the status the HTTP layer answers', () => {
    const wrong = rows
      .filter((r) => Object.hasOwn(HTTP_STATUS_BY_CODE, r.code))
      .filter((r) => HTTP_STATUS_BY_CODE[r.code as keyof typeof HTTP_STATUS_BY_CODE] !== r.status)
      .map((r) => `${r.code}: doc says ${r.status}, HTTP_STATUS_BY_CODE says ${HTTP_STATUS_BY_CODE[r.code as keyof typeof HTTP_STATUS_BY_CODE]} (line ${r.line})`);
    expect(wrong).toEqual([]);
  });

  it('explains every code', () => {
    expect(rows.filter((r) => r.meaning.length < 10).map((r) => r.code)).toEqual([]);
  });
});

describe('HTTP_STATUS_BY_CODE', () => {
  it('maps exactly the catalogue codes to error statuses', () => {
    expect(Object.keys(HTTP_STATUS_BY_CODE).sort()).toEqual([...ERROR_CODES].sort());
    for (const code of ERROR_CODES) {
      const status = HTTP_STATUS_BY_CODE[code];
      expect(status >= 400 && status <= 599, `${code} -> ${status}`).toBe(true);
    }
  });
});
