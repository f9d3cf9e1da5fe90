import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import pg from 'pg';
import type { ReceiverMetrics } from './metrics.js';

/** The channel the `orders_status_notify` trigger notifies, with the order id as payload. */
export const ORDER_STATUS_CHANNEL = 'order_status';

const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5_000;
/** A LISTEN connection is idle for long stretches; a firewall may drop it without a word. */
const HEARTBEAT_MS = 30_000;

/** A registered wait for one order; `cancel` removes it (idempotent). */
export interface StatusWatch {
  /** Resolves on a notification for the order, a reconnect (which may have missed one), the timeout, an abort or shutdown. */
  changed: Promise<void>;
  cancel(): void;
}

export interface OrderStatusListener {
  watch(orderId: string, timeoutMs: number, signal: AbortSignal): StatusWatch;
  /** True once the app is closing: waits answer at once. */
  readonly closing: boolean;
}

declare module 'fastify' {
  interface FastifyInstance {
    orderStatus: OrderStatusListener;
  }
}

/**
 * One LISTEN connection per receiver process, whatever the number of waiting requests: an
 * in-process map from order id to the requests waiting on it. The connection is reopened when it
 * drops (with backoff); after every (re)connect all waiters look at their order again, since
 * notifications sent while nobody listened are gone.
 */
export class PgOrderStatusListener implements OrderStatusListener {
  private readonly waiters = new Map<string, Set<() => void>>();
  private client: pg.Client | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly heartbeat: NodeJS.Timeout;
  private retryMs = RETRY_MIN_MS;
  closing = false;

  constructor(
    private readonly connectionString: string,
    private readonly log: FastifyBaseLogger,
    private readonly metrics: Pick<ReceiverMetrics, 'orderWaiters' | 'orderStatusListenerReconnects'>,
  ) {
    this.heartbeat = setInterval(() => {
      const client = this.client;
      client?.query('SELECT 1').catch((error: unknown) => this.lost(client, error));
    }, HEARTBEAT_MS).unref();
    void this.connect();
  }

  watch(orderId: string, timeoutMs: number, signal: AbortSignal): StatusWatch {
    let cancel = () => {};
    const changed = new Promise<void>((resolve) => {
      if (this.closing || signal.aborted || timeoutMs <= 0) return resolve();
      let set = this.waiters.get(orderId);
      if (!set) {
        set = new Set();
        this.waiters.set(orderId, set);
      }
      const done = () => {
        if (!set.delete(done)) return;
        if (set.size === 0 && this.waiters.get(orderId) === set) this.waiters.delete(orderId);
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.metrics.orderWaiters.dec();
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      signal.addEventListener('abort', done, { once: true });
      set.add(done);
      this.metrics.orderWaiters.inc();
      cancel = done;
    });
    return { changed, cancel: () => cancel() };
  }

  /** Wakes every waiter and closes the connection; later watches resolve at once. */
  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.reconnectTimer);
    this.wakeAll();
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const url = new URL(this.connectionString);
    // Prisma's `schema` parameter means nothing to pg; a channel is per database anyway.
    url.searchParams.delete('schema');
    const client = new pg.Client({
      connectionString: url.toString(),
      application_name: 'webhook-receiver-listener',
      keepAlive: true,
      connectionTimeoutMillis: 5_000,
      query_timeout: 5_000,
    });
    this.client = client;
    client.on('notification', (message) => {
      if (message.channel === ORDER_STATUS_CHANNEL && message.payload) this.wake(message.payload);
    });
    client.on('error', (error) => this.lost(client, error));
    client.on('end', () => this.lost(client, new Error('connection ended')));
    try {
      await client.connect();
      await client.query(`LISTEN ${ORDER_STATUS_CHANNEL}`);
    } catch (error) {
      this.lost(client, error);
      return;
    }
    if (this.client !== client) {
      // Closed or replaced while connecting.
      void client.end().catch(() => undefined);
      return;
    }
    this.retryMs = RETRY_MIN_MS;
    this.log.info('listening for order status changes');
    this.wakeAll();
  }

  private lost(client: pg.Client | undefined, error: unknown): void {
    if (!client || this.client !== client) return;
    this.client = undefined;
    client.removeAllListeners('notification');
    void client.end().catch(() => undefined);
    if (this.closing) return;
    this.metrics.orderStatusListenerReconnects.inc();
    this.log.warn({ err: error, retryInMs: this.retryMs }, 'order status listener lost its connection; reconnecting');
    this.reconnectTimer = setTimeout(() => void this.connect(), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
  }

  private wake(orderId: string): void {
    for (const done of [...(this.waiters.get(orderId) ?? [])]) done();
  }

  private wakeAll(): void {
    for (const waiting of [...this.waiters.values()]) for (const done of [...waiting]) done();
  }
}

/** Order status changes pushed by PostgreSQL (LISTEN/NOTIFY), for long-poll requests. */
export default fp(
  async function orderStatusListenerPlugin(app: FastifyInstance, options: { databaseUrl: string }) {
    const listener = new PgOrderStatusListener(options.databaseUrl, app.log, app.metrics);
    app.decorate('orderStatus', listener);
    // Before in-flight requests are awaited: waiting requests answer now instead of holding shutdown.
    app.addHook('preClose', async () => {
      await listener.close();
    });
  },
  { name: 'order-status-listener', dependencies: ['metrics'] },
);
