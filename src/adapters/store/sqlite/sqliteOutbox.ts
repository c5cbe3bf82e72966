import type { JobError } from '../../../core/job.js';
import { isTerminal } from '../../../core/jobState.js';
import { IN_APP_CHANNEL, notificationData, notificationIdOf, notificationTypeOf, outboxEntryId, webhookChannel } from '../../../core/notifications.js';
import type { InAppDelivery } from '../../../ports/deliveryStore.js';
import type { JobRow } from './rowMapping.js';
import type { DeliveryQueries } from './sqliteDeliveryQueries.js';

/**
 * Writes the outbox entries of a terminal transition: one `in_app` entry and one per enabled
 * webhook endpoint of the org subscribed to the type. Called from inside the op that wrote the
 * terminal state (see appendEvent), so the entries commit — or roll back — with it.
 * `inline`: the in-app notification is inserted here instead of an `in_app` entry (see
 * InAppDelivery in the DeliveryStore port): the notification row, unique by job and type, is
 * the delivery record, and an entry born delivered would be one more row (and three more index
 * pages per group commit) that nothing ever reads.
 *
 * This is on the hot path of every job: one INSERT plus one index seek on the org's endpoints.
 * ON CONFLICT DO NOTHING on the dedupe keys makes a replay insert nothing.
 */
export function writeOutbox(q: DeliveryQueries, mode: InAppDelivery, job: JobRow, now: number): void {
  const status = job.status;
  if (!isTerminal(status)) return;
  const type = notificationTypeOf(status);
  const finishedAt = job.finished_at ?? now;
  const payload = JSON.stringify(
    notificationData({
      jobId: job.job_id,
      orgId: job.org_id,
      status,
      analyzer: job.analyzer,
      resultId: job.result_id,
      error: job.error === null ? null : (JSON.parse(job.error) as JobError),
      finishedAt,
    }),
  );
  if (mode === 'inline') {
    q.insertNotification.run(notificationIdOf(job.job_id, type), job.org_id, job.job_id, type, payload, now);
  } else {
    q.insertEntry.run(outboxEntryId(job.job_id, type, IN_APP_CHANNEL), job.org_id, job.job_id, type, IN_APP_CHANNEL, 'in_app', null, payload, finishedAt, now, now, now);
  }
  for (const endpointId of q.subscribedEndpoints.all(job.org_id, type)) {
    const channel = webhookChannel(endpointId);
    q.insertEntry.run(outboxEntryId(job.job_id, type, channel), job.org_id, job.job_id, type, channel, 'webhook', endpointId, payload, finishedAt, now, now, now);
  }
}
