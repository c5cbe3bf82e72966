// The org's event stream (`/analyze/events/stream`), one connection per page shared by every part
// that follows it: the job list and the inbox open it (`followOrgEvents`); the unread badge only
// listens (`listenOrgEvents`) and polls where no page opened it. A browser keeps at most six
// HTTP/1.1 connections per server across all tabs, so a job page (its own job stream) does not
// open a second one for the badge.
import { TERMINAL, followStream } from './sse.js';

/** @typedef {{ onEvent?: (e: any) => void, onState?: (state: string, detail?: string) => void }} OrgListener */

/** @type {Set<OrgListener>} */
const listeners = new Set();
let state = 'off';
let stop = null;

/**
 * Subscribes to the org's events without opening the stream. Gets the current state at once
 * ('off' while no page follows the stream). Returns an unsubscribe function.
 * @param {OrgListener} listener
 */
export function listenOrgEvents(listener) {
  listeners.add(listener);
  listener.onState?.(state);
  return () => listeners.delete(listener);
}

/**
 * Subscribes and opens the stream (once per page; it stays open until the page goes away).
 * @param {OrgListener} listener
 */
export function followOrgEvents(listener) {
  const unsubscribe = listenOrgEvents(listener);
  if (stop === null) {
    stop = followStream('/analyze/events/stream', {
      untilTerminal: false,
      onEvent: (e) => {
        for (const l of listeners) l.onEvent?.(e);
      },
      onState: (s, detail) => {
        state = s;
        for (const l of listeners) l.onState?.(s, detail);
      },
    });
    window.addEventListener('pagehide', () => stop?.(), { once: true });
  }
  return unsubscribe;
}

/** A terminal job event: the moment a job's in-app notification is written (or queued for delivery). */
export const isTerminalEvent = (e) => TERMINAL.has(e?.type);

/**
 * Runs `load` after a terminal job event (coalesced: at most once per `delayMs`), and once more
 * `lagMs` later for notifications that go through the delivery outbox rather than the terminal
 * transaction itself (rate-limited in-app delivery, or another process delivering).
 * @param {() => unknown} load
 * @param {{ delayMs: number, lagMs: number }} timing
 */
export function reloadOnTerminal(load, { delayMs, lagMs }) {
  let soon = null;
  let late = null;
  return (e) => {
    if (!isTerminalEvent(e)) return;
    soon ??= setTimeout(() => {
      soon = null;
      void load();
    }, delayMs);
    clearTimeout(late);
    late = setTimeout(() => void load(), lagMs);
  };
}
