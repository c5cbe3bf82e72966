import type pg from 'pg';
import { asOrgId, newToken } from '../../../core/ids.js';
import { notificationIdOf, type NotificationType } from '../../../core/notifications.js';
import type { DeliveryStore } from '../../../ports/deliveryStore.js';
import { toClaimedEntry, toDelivery, toEndpoint, toNotification, type ClaimRow, type EndpointRow, type NotificationRow, type OutboxRow } from './postgresDeliveryRows.js';
import type { Op } from './postgresGroupCommit.js';
import type { PgSql } from './postgresSql.js';
import type { Tx } from './postgresTx.js';

/**
 * The "no cursor" bound of keyset listings. Always paired with NO_TIME_CURSOR, which no
 * created_at reaches, so the row comparison is decided by the time and the id bound's place in
 * the database collation (where '~' sorts before letters under ICU/glibc locales) never matters.
 */
const NO_ID_CURSOR = '~';
const NO_TIME_CURSOR = Number.MAX_SAFE_INTEGER;

type Query = <R extends pg.QueryResultRow>(name: keyof PgSql['names'], values: unknown[]) => Promise<R[]>;

/** How the delivery methods reach the store (see createPostgresJobStore). */
export interface PgDeliveryAccess {
  /** A group-committed write op (same transactions as the job writes). */
  write<T>(op: Op<null, T>): Promise<T>;
  /** One short read transaction as the application role bound to `org`. */
  tenantRead<T>(org: string, run: (q: Query) => Promise<T>): Promise<T>;
  /** One short read transaction as the internal role (cross-tenant). */
  internalRead<T>(run: (q: Query) => Promise<T>): Promise<T>;
}

/**
 * A delivery write: one op of the group commit, as the application role bound to `org` (RLS
 * applies) or, with org null, as the internal role. It touches no job, so it never orders
 * job ops around it. A statement error fails this op alone (the batch redoes with savepoints).
 */
function deliveryOp<T>(org: string | null, run: (tx: Tx) => Promise<T>): Op<null, T> {
  return {
    key: null,
    jobs: [],
    input: null,
    exec: async (tx) => {
      if (org === null) tx.asInternal();
      else tx.asTenant(org);
      return [{ ok: true, value: await run(tx) }];
    },
  };
}

/**
 * Pipelined ahead of an endpoint write in its transaction (no extra round trip): PostgreSQL
 * sends the NOTIFY when the transaction commits, and drops it when it rolls back. Every
 * process's event feed LISTENs on the channel and tells its notification dispatcher, so
 * an endpoint created through one process is known to the dispatchers of all the others
 * at once instead of at their next re-read (docs/notifications.md).
 */
function signalEndpointChange(tx: Tx, org: string): void {
  tx.send({ name: tx.sql.names.notifyEndpoints, text: tx.sql.notifyEndpoints, values: [tx.names.endpointsChannel, org] });
}

/**
 * The DeliveryStore half of the PostgreSQL store. Every write is a single statement (a
 * compare-and-set in its WHERE clause, or CTEs), so no read-modify-write needs a row lock
 * held across round trips; claims use FOR UPDATE SKIP LOCKED like job claims.
 */
export function createPostgresDeliveryMethods({ write, tenantRead, internalRead }: PgDeliveryAccess): DeliveryStore {
  const floor = (n: number): number => Math.max(0, Math.floor(n));
  return {
    claimOutbox: (cmd) =>
      cmd.limit <= 0
        ? Promise.resolve([])
        : write(
            deliveryOp(null, async (tx) => {
              // One random draw per claim, suffixed per entry in SQL (as job leases do).
              const rows = await tx.query<ClaimRow>('claimOutbox', [cmd.kind, cmd.now, floor(cmd.limit), cmd.now + cmd.leaseMs, newToken('dlv_')], true);
              return rows.map(toClaimedEntry);
            }),
          ),

    completeInApp: (entry, now) =>
      write(
        deliveryOp(entry.orgId, async (tx) => {
          const [row] = await tx.query<NotificationRow>(
            'completeInApp',
            [notificationIdOf(entry.jobId, entry.type), entry.orgId, entry.jobId, entry.type, JSON.stringify(entry.data) ?? 'null', now, entry.entryId],
            true,
          );
          return toNotification(row as NotificationRow);
        }),
      ),

    recordWebhookAttempt: (entry, result, now, nextAttemptAt) =>
      write(
        deliveryOp(entry.orgId, async (tx) => {
          const status = result.ok ? 'delivered' : nextAttemptAt === null ? 'failed' : 'pending';
          const [row] = await tx.query<OutboxRow>(
            'recordAttempt',
            [
              entry.entryId,
              entry.orgId,
              entry.leaseToken,
              status,
              nextAttemptAt ?? now,
              now,
              result.statusCode,
              result.ok ? null : (result.error ?? 'failed').slice(0, 500),
              result.ok ? now : null,
            ],
            true,
          );
          return row ? toDelivery(row) : undefined;
        }),
      ),

    deferEntry: (entry, until) =>
      write(deliveryOp(entry.orgId, async (tx) => (await tx.query('deferEntry', [entry.entryId, entry.orgId, entry.leaseToken, until], true)).length > 0)),

    listJobNotifications: (orgId, jobId, channel, limit) =>
      limit <= 0 ? Promise.resolve([]) : tenantRead(orgId, async (q) => (await q<NotificationRow>('jobNotifications', [orgId, jobId, channel, floor(limit)])).map(toNotification)),

    listInbox: (orgId, query) =>
      query.limit <= 0
        ? Promise.resolve([])
        : tenantRead(orgId, async (q) => {
            const values = [orgId, query.before?.createdAt ?? NO_TIME_CURSOR, query.before?.notificationId ?? NO_ID_CURSOR, floor(query.limit)];
            return (await q<NotificationRow>(query.unreadOnly ? 'inboxUnread' : 'inbox', values)).map(toNotification);
          }),

    markRead: (orgId, notificationId, now) =>
      write(
        deliveryOp(orgId, async (tx) => {
          const [row] = await tx.query<NotificationRow>('markRead', [orgId, notificationId, now], true);
          return row ? toNotification(row) : undefined;
        }),
      ),

    createWebhookEndpoint: (cmd) =>
      write(
        deliveryOp(cmd.orgId, async (tx) => {
          signalEndpointChange(tx, cmd.orgId);
          const [row] = await tx.query<EndpointRow>(
            'insertEndpoint',
            [cmd.endpointId, cmd.orgId, cmd.url, cmd.description, JSON.stringify(cmd.eventTypes), cmd.secret, cmd.now],
            true,
          );
          return toEndpoint(row as EndpointRow);
        }),
      ),

    listWebhookEndpoints: (orgId) => tenantRead(orgId, async (q) => (await q<EndpointRow>('endpointsByOrg', [orgId])).map(toEndpoint)),

    getWebhookEndpoint: (orgId, endpointId) =>
      tenantRead(orgId, async (q) => {
        const [row] = await q<EndpointRow>('endpointByOrg', [orgId, endpointId]);
        return row ? toEndpoint(row) : undefined;
      }),

    updateWebhookEndpoint: (orgId, endpointId, patch, now) =>
      write(
        deliveryOp(orgId, async (tx) => {
          signalEndpointChange(tx, orgId);
          const [row] = await tx.query<EndpointRow>(
            'updateEndpoint',
            [
              orgId,
              endpointId,
              patch.url ?? null,
              patch.description !== undefined,
              patch.description ?? null,
              patch.eventTypes !== undefined ? JSON.stringify(patch.eventTypes) : null,
              patch.enabled ?? null,
              now,
            ],
            true,
          );
          return row ? toEndpoint(row) : undefined;
        }),
      ),

    deleteWebhookEndpoint: (orgId, endpointId) =>
      write(
        deliveryOp(orgId, async (tx) => {
          signalEndpointChange(tx, orgId);
          return (await tx.query('deleteEndpoint', [orgId, endpointId], true)).length > 0;
        }),
      ),

    listDeliveries: (orgId, endpointId, query) =>
      query.limit <= 0
        ? Promise.resolve([])
        : tenantRead(orgId, async (q) => {
            const values = [
              orgId,
              endpointId,
              query.status ?? null,
              query.before?.createdAt ?? NO_TIME_CURSOR,
              query.before?.deliveryId ?? NO_ID_CURSOR,
              floor(query.limit),
            ];
            return (await q<OutboxRow>('deliveries', values)).map(toDelivery);
          }),

    getDelivery: (orgId, endpointId, deliveryId) =>
      tenantRead(orgId, async (q) => {
        const [row] = await q<OutboxRow>('deliveryByOrg', [orgId, endpointId, deliveryId]);
        return row ? toDelivery(row) : undefined;
      }),

    redeliver: (orgId, endpointId, deliveryId, now) =>
      write(
        deliveryOp(orgId, async (tx) => {
          const [updated] = await tx.query<OutboxRow>('redeliver', [orgId, endpointId, deliveryId, now]);
          if (updated) return toDelivery(updated);
          // Missing, or in flight (left alone): report it as it is.
          const [row] = await tx.query<OutboxRow>('deliveryByOrg', [orgId, endpointId, deliveryId], true);
          return row ? toDelivery(row) : undefined;
        }),
      ),

    countTerminalWithoutInApp: (olderThan) => internalRead(async (q) => (await q<{ n: number }>('pendingInAppBefore', [olderThan]))[0]?.n ?? 0),
    webhookSubscriptions: () =>
      internalRead(async (q) => (await q<{ org_id: string; type: string }>('webhookSubscriptions', [])).map((r) => ({ orgId: asOrgId(r.org_id), type: r.type as NotificationType }))),
  };
}
