import { UpshiftError } from './errors.js';

/**
 * Glossary
 * - job: one submitted unit of analyzer work, owned by exactly one org.
 * - attempt: 1-based number of the run that is (or will next be) executing.
 * - lease: the right of one worker to write the outcome of one attempt, identified by a
 *   random lease token and valid until `lease_expires_at` unless extended by heartbeats.
 * - terminal: completed | failed | canceled — never changed once written.
 */
export const JOB_STATUSES = ['queued', 'running', 'completed', 'failed', 'canceled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export type TerminalStatus = 'completed' | 'failed' | 'canceled';

export const TERMINAL_STATUSES: readonly TerminalStatus[] = ['completed', 'failed', 'canceled'];

export const isTerminal = (s: JobStatus): s is TerminalStatus =>
  s === 'completed' || s === 'failed' || s === 'canceled';

export const isJobStatus = (s: unknown): s is JobStatus =>
  typeof s === 'string' && (JOB_STATUSES as readonly string[]).includes(s);

/** Why a transition happens; the table below allows each (from, to, reason) exactly. */
export type TransitionReason =
  | 'submit'
  | 'claim'
  | 'cancel_before_start'
  | 'analyzer_returned'
  | 'analyzer_failed'
  | 'attempts_exhausted'
  | 'retry'
  | 'lease_expired'
  | 'cancel_observed'
  | 'cancel_forced';

type From = JobStatus | 'new';

/** The one transition policy (SPEC §2.1). Nothing else decides a status change. */
export const TRANSITIONS: ReadonlyArray<{ from: From; to: JobStatus; reasons: readonly TransitionReason[] }> = [
  { from: 'new', to: 'queued', reasons: ['submit'] },
  { from: 'queued', to: 'running', reasons: ['claim'] },
  { from: 'queued', to: 'canceled', reasons: ['cancel_before_start'] },
  { from: 'running', to: 'completed', reasons: ['analyzer_returned'] },
  { from: 'running', to: 'failed', reasons: ['analyzer_failed', 'attempts_exhausted', 'lease_expired'] },
  { from: 'running', to: 'queued', reasons: ['retry', 'lease_expired'] },
  { from: 'running', to: 'canceled', reasons: ['cancel_observed', 'cancel_forced', 'lease_expired'] },
];

export function canTransition(from: From, to: JobStatus, reason?: TransitionReason): boolean {
  return TRANSITIONS.some(
    (t) => t.from === from && t.to === to && (reason === undefined || t.reasons.includes(reason)),
  );
}

/** Throws JOB_INVALID_TRANSITION unless the table allows it. */
export function assertTransition(from: From, to: JobStatus, reason?: TransitionReason): void {
  if (!canTransition(from, to, reason)) {
    throw new UpshiftError(
      'JOB_INVALID_TRANSITION',
      `transition ${from} -> ${to}${reason ? ` (${reason})` : ''} is not allowed`,
      { details: { from, to, reason } },
    );
  }
}
