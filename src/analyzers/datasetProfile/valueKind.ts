/**
 * Type inference for single values. CSV cells are text and are classified by syntax;
 * NDJSON values already carry a JSON type, so only strings are inspected (for dates).
 */

export type ValueKind = 'integer' | 'number' | 'boolean' | 'date' | 'string';

/** A classified non-null value. `key` is the canonical identity used for distinct/top. */
export type Classified =
  | { kind: 'integer' | 'number'; num: number }
  | { kind: 'boolean'; bool: boolean }
  | { kind: 'date'; ms: number; text: string }
  | { kind: 'string'; text: string };

const INT_RE = /^[+-]?\d+$/;
// No hex, no `Infinity`/`NaN`, no thousands separators: those are text in every CSV dialect.
const NUM_RE = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
// ISO-8601 / RFC 3339 calendar date with optional time; a space separator is accepted
// because it is what most CSV exports write.
const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})?)?$/;

/** One shared result object per kind: classification runs per cell, so it must not allocate. */
const numberOut = { kind: 'number' as 'integer' | 'number', num: 0 };
const boolOut = { kind: 'boolean' as const, bool: false };
const dateOut = { kind: 'date' as const, ms: 0, text: '' };
const stringOut = { kind: 'string' as const, text: '' };

/**
 * Classifies a non-empty CSV cell. The returned object is reused by the next call: read it
 * before classifying another value.
 */
export function classifyText(s: string): Classified {
  const c = s.charCodeAt(0);
  const digitLike = (c >= 48 && c <= 57) || c === 43 || c === 45 || c === 46; // 0-9 + - .
  if (digitLike) {
    if (INT_RE.test(s)) {
      const n = Number(s);
      // Beyond 2^53 the value is not exactly representable: report it as a (lossy) number.
      numberOut.kind = Number.isSafeInteger(n) ? 'integer' : 'number';
      numberOut.num = n;
      return numberOut;
    }
    if (NUM_RE.test(s)) {
      const n = Number(s);
      if (Number.isFinite(n)) {
        numberOut.kind = 'number';
        numberOut.num = n;
        return numberOut;
      }
    }
    if (c >= 48 && c <= 57 && s.length >= 10 && s.charCodeAt(4) === 45) {
      const ms = parseIsoDate(s);
      if (ms !== null) {
        dateOut.ms = ms;
        dateOut.text = s;
        return dateOut;
      }
    }
  } else if (s.length === 4 || s.length === 5) {
    const lower = s.toLowerCase();
    if (lower === 'true' || lower === 'false') {
      boolOut.bool = lower === 'true';
      return boolOut;
    }
  }
  stringOut.text = s;
  return stringOut;
}

/**
 * Classifies a non-null NDJSON value; `''` must be handled as null by the caller. JSON
 * strings are never re-typed as numbers or booleans (the producer chose a string), but
 * ISO dates can only be strings in JSON, so those are recognised. Nested objects and arrays
 * are profiled as their JSON text.
 */
export function classifyJson(v: unknown): Classified {
  switch (typeof v) {
    case 'number':
      if (Number.isFinite(v)) {
        numberOut.kind = Number.isSafeInteger(v) ? 'integer' : 'number';
        numberOut.num = v;
        return numberOut;
      }
      break; // 1e999 parses to Infinity: keep it as text rather than poison the moments
    case 'boolean':
      boolOut.bool = v;
      return boolOut;
    case 'string': {
      const c = v.charCodeAt(0);
      if (c >= 48 && c <= 57 && v.length >= 10 && v.charCodeAt(4) === 45) {
        const ms = parseIsoDate(v);
        if (ms !== null) {
          dateOut.ms = ms;
          dateOut.text = v;
          return dateOut;
        }
      }
      stringOut.text = v;
      return stringOut;
    }
    default:
      break;
  }
  stringOut.text = typeof v === 'object' ? JSON.stringify(v) : String(v);
  return stringOut;
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * Epoch milliseconds of an ISO date, or null when it is not a valid calendar date/time.
 * Date.parse is not used: V8 accepts `2024-02-30`, and treats offset-less date-times as
 * local time, which would make ordering depend on the server's time zone. Here offset-less
 * times are UTC.
 */
export function parseIsoDate(s: string): number | null {
  const m = DATE_RE.exec(s);
  if (m === null) return null;
  const y = Number(m[1]);
  const mo = Number(m[2]);
  const d = Number(m[3]);
  if (mo < 1 || mo > 12) return null;
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  const dim = mo === 2 && leap ? 29 : (DAYS_IN_MONTH[mo - 1] ?? 31);
  if (d < 1 || d > dim) return null;
  const h = m[4] === undefined ? 0 : Number(m[4]);
  const mi = m[5] === undefined ? 0 : Number(m[5]);
  const sec = m[6] === undefined ? 0 : Number(m[6]);
  if (h > 23 || mi > 59 || sec > 59) return null;
  const frac = m[7] === undefined ? 0 : Number(m[7].slice(0, 3).padEnd(3, '0'));
  let offsetMin = 0;
  const tz = m[8];
  if (tz !== undefined && tz !== 'Z') {
    const oh = Number(tz.slice(1, 3));
    const om = Number(tz.slice(4, 6));
    if (oh > 23 || om > 59) return null;
    offsetMin = (tz[0] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  return daysFromCivil(y, mo, d) * 86_400_000 + ((h * 60 + mi - offsetMin) * 60 + sec) * 1000 + frac;
}

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}
