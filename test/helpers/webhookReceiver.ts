import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

export type ReceiverMode = 'ok' | 'error' | 'hang';

export interface ReceivedDelivery {
  readonly id: string;
  readonly status: number | null;
  readonly verified: boolean;
  readonly payload: { type: string; timestamp: string; data: Record<string, unknown> } | null;
  readonly at: number;
}

/**
 * A loopback webhook receiver that verifies EVERY request with `standardwebhooks` and records
 * what it answered. `mode`: ok → 200 (after verification), error → 503, hang → never answers.
 * `down()` stops listening (connection refused) and `up()` listens again on the same port.
 */
export async function startReceiver(opts: { secret?: string; port?: number } = {}) {
  let secret = opts.secret ?? '';
  let mode: ReceiverMode = 'ok';
  const received: ReceivedDelivery[] = [];
  const hanging = new Set<ServerResponse>();
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(',') : (v ?? '')]));
      let payload: ReceivedDelivery['payload'] = null;
      try {
        payload = new Webhook(secret).verify(body, headers) as ReceivedDelivery['payload'];
      } catch {
        payload = null;
      }
      const record = (status: number | null) => received.push({ id: headers['webhook-id'] ?? '', status, verified: payload !== null, payload, at: Date.now() });
      if (payload === null) {
        record(400);
        res.writeHead(400).end('bad signature');
      } else if (mode === 'hang') {
        record(null);
        hanging.add(res);
        res.on('close', () => hanging.delete(res));
      } else if (mode === 'error') {
        record(503);
        res.writeHead(503).end('try later');
      } else {
        record(200);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      }
    });
  };
  let server: Server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  let listening = true;
  return {
    port,
    url: `http://127.0.0.1:${port}/hook`,
    received,
    setSecret(s: string) {
      secret = s;
    },
    setMode(m: ReceiverMode) {
      mode = m;
    },
    /** Webhook ids answered 2xx, with how many times each. */
    successes(): Map<string, number> {
      const m = new Map<string, number>();
      for (const r of received) if (r.status === 200) m.set(r.id, (m.get(r.id) ?? 0) + 1);
      return m;
    },
    get hangingCount() {
      return hanging.size;
    },
    async down() {
      if (!listening) return;
      listening = false;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
    async up() {
      if (listening) return;
      server = createServer(handler);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => resolve());
      });
      listening = true;
    },
    async close() {
      for (const res of hanging) res.destroy();
      await this.down();
    },
  };
}

export type Receiver = Awaited<ReturnType<typeof startReceiver>>;
