import type { Json } from '../../../core/job.js';
import type { FinishOutcome } from '../../../ports/jobStore.js';

/**
 * PostgreSQL can hold no U+0000 in `text` or `jsonb` (22021 / 22P05), while analyzers may well
 * produce one (a NUL byte in a profiled file's values, in an error message). Rather than
 * failing the write — and with it the job, attempt after attempt — what analyzers report is
 * stored with U+0000 replaced by U+FFFD (the replacement character), at the store's entry, so
 * reads return exactly what was stored and chunk-key idempotency compares stored keys.
 * Submitted input is never altered: the job service refuses U+0000 there on every store.
 */
export const storableText = (s: string): string => (s.includes('\u0000') ? s.replaceAll('\u0000', '\uFFFD') : s);

export function storableJson(v: Json): Json {
  if (typeof v === 'string') return storableText(v);
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(storableJson);
  const out: Record<string, Json> = {};
  for (const [k, x] of Object.entries(v)) out[storableText(k)] = storableJson(x);
  return out;
}

/** Fast path: most payloads hold no NUL (JSON.stringify spells it `\u0000`). */
const needsCleaning = (v: Json): boolean => typeof v === 'string' ? v.includes('\u0000') : v !== null && typeof v === 'object' && (JSON.stringify(v) ?? '').includes('\\u0000');

export const storablePayload = (v: Json): Json => (needsCleaning(v) ? storableJson(v) : v);

export function storableOutcome(o: FinishOutcome): FinishOutcome {
  switch (o.status) {
    case 'completed':
      return needsCleaning(o.payload) ? { ...o, payload: storableJson(o.payload) } : o;
    case 'failed':
    case 'retry':
      return { ...o, error: { code: storableText(o.error.code), message: storableText(o.error.message) } };
    case 'canceled':
      return o;
  }
}
