/**
 * Outbound webhook transport: target policy (SSRF) and one signed HTTP delivery. The adapter
 * (src/adapters/notify/webhook/) owns DNS, sockets and signing; the dispatcher only decides
 * what to send when and what an outcome means for the retry schedule.
 */
export interface WebhookSender {
  /**
   * Checks a target URL when an endpoint is created or changed: http or https only, and —
   * unless private targets are allowed by configuration — a host that resolves only to public
   * addresses (no loopback, private, link-local, CGNAT, multicast or reserved ranges).
   * Throws WEBHOOK_URL_INVALID (malformed, wrong scheme, host that does not resolve) or
   * WEBHOOK_URL_FORBIDDEN (private target).
   */
  checkTarget(url: string): Promise<void>;

  /**
   * Sends one delivery: POST `body` (JSON) with the Standard Webhooks headers `webhook-id`,
   * `webhook-timestamp` and `webhook-signature` (HMAC-SHA256 with `secret`). The target policy
   * is enforced again at connect time, on the address actually dialled (no DNS rebinding).
   * Never throws: every outcome is a result. A 2xx answer within the timeout is success;
   * redirects are not followed.
   */
  send(message: WebhookMessage): Promise<WebhookSendResult>;
}

export interface WebhookMessage {
  readonly url: string;
  /** `whsec_…` (Standard Webhooks secret). */
  readonly secret: string;
  /** The `webhook-id`: stable across retries of one message. */
  readonly messageId: string;
  /** Signing time (epoch ms): the `webhook-timestamp`, fresh for each attempt. */
  readonly timestamp: number;
  readonly body: string;
}

export type WebhookSendResult =
  | { readonly ok: true; readonly statusCode: number }
  | {
      readonly ok: false;
      /** The receiver's status, or null when no answer arrived (refused, timeout, DNS). */
      readonly statusCode: number | null;
      /** Short, secret-free reason, e.g. `HTTP 503`, `timeout after 5000 ms`, `ECONNREFUSED`. */
      readonly error: string;
      /** False when another attempt cannot succeed (target forbidden by policy, malformed URL). */
      readonly retryable: boolean;
    };
