/**
 * Metrics the features feed (SPEC §4.3). The composition root owns one instance per Upshift
 * (a Prometheus registry behind it, exposed at `GET /metrics`); components get it as an
 * optional dependency and fall back to `noopMetrics`.
 *
 * Label values must stay bounded: pass fixed vocabularies (channel names, delivery states),
 * never org ids, job ids, URLs or error messages.
 */
export interface Metrics {
  /**
   * Records one finished retention run. `report` is the run's JSON report (SPEC §4.2 keys:
   * `dry_run`, `results.delete_count`, `events.delete_count`, `notifications.delete_count`), or null when the run failed
   * before it produced one. Deletes count only for live runs; the exit code and the run time
   * are recorded for every run (dry runs included), so a failing run always shows.
   */
  retentionRun(report: RetentionReportLike | null, exitCode: number): void;

  /**
   * Counts one notification delivery attempt that reached a final or intermediate state.
   * `channel`: `in_app` or `webhook`; `status`: `delivered`, `failed`, `retrying`, `coalesced`…
   * (a small fixed set; each distinct value becomes a time series).
   */
  notificationDelivered(channel: string, status: string, count?: number): void;

  /**
   * Sets the source of `upshift_terminal_jobs_without_in_app_notification`: the number of
   * terminal jobs older than the delivery grace (SPEC §4.1: 10 s) without an in-app
   * notification. Called on scrape (cached briefly); a rejection leaves the last value.
   * Until a provider is set the gauge is not exported at all.
   */
  setTerminalWithoutInAppProvider(fn: () => Promise<number>): void;
}

/** The part of the retention JSON report (SPEC §4.2) the metrics read. */
export interface RetentionReportLike {
  readonly dry_run: boolean;
  readonly results: { readonly delete_count: number };
  readonly events: { readonly delete_count: number };
  readonly notifications: { readonly delete_count: number };
}

/** What the HTTP layer needs: request timing and the exposition for `GET /metrics`. */
export interface HttpMetrics {
  /** Content type of the exposition (Prometheus text format 0.0.4). */
  readonly contentType: string;
  /** The current exposition (collects scrape-time gauges first). */
  scrape(): Promise<string>;
  /**
   * One finished HTTP request. `route` is the route template (`/analyze/results/:result_id`),
   * `unmatched` when no route matched — never the raw URL.
   */
  httpRequest(method: string, route: string, statusCode: number, seconds: number): void;
}

export const noopMetrics: Metrics = {
  retentionRun() {},
  notificationDelivered() {},
  setTerminalWithoutInAppProvider() {},
};
