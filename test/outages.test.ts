import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import { createLogger } from '@ledger/shared';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { closeAll, freePorts, startChild, waitUntil, type RunningProcess } from '@ledger/testkit';
import { serviceAuth } from './helpers/auth.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { captureLogs } from './helpers/logs.js';
import { buildTestReceiver } from './helpers/receiver.js';
import { uniquePrefix } from './helpers/redis.js';

// After a successful start, PostgreSQL or Redis going away must cost one log line per outage (and one
// when it is back), never hang a scrape, and turn requests into 503s that tell the client to retry.

/** A redis-server of this test's own on `port`, so that it can be taken away and brought back. */
async function startRedis(port: number): Promise<RunningProcess> {
  const server = startChild({
    command: 'redis-server',
    args: ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
  });
  const probe = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => undefined);
  try {
    await waitUntil(
      async () =>
        (await probe.connect().then(
          () => probe.ping(),
          () => undefined,
        )) === 'PONG',
      10_000,
      'redis-server to answer',
    );
  } finally {
    probe.disconnect();
  }
  return server;
}

/**
 * Stands on a dead Redis' port and resets every connection: each reconnect attempt of a client is
 * counted here and fails at once with ECONNRESET, as many times as the test wants to see.
 */
async function refuseConnections(port: number): Promise<{ attempts: () => number; close(): Promise<void> }> {
  let attempts = 0;
  const server: Server = createServer((socket) => {
    attempts += 1;
    socket.resetAndDestroy();
  });
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  // close() may run twice (the test stops refusing, then afterEach makes sure): once closed, done.
  const close = () =>
    new Promise<void>((resolve, reject) => {
      if (!server.listening) return resolve();
      server.close((error) => (error ? reject(error) : resolve()));
    });
  return { attempts: () => attempts, close };
}

/** Log lines of an in-process receiver. */
function receiverLogs() {
  const { lines, stream } = captureLogs();
  return { lines, logger: createLogger('webhook-receiver', 'info', stream) };
}

const messages = (lines: string[]) => lines.map((line) => (JSON.parse(line) as { msg: string }).msg);

let db: TestDatabase;
let app: FastifyInstance | undefined;
let redis: RunningProcess | undefined;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
});
afterEach(async () => {
  const [receiver, server] = [app, redis];
  [app, redis] = [undefined, undefined];
  await closeAll('after the outage test', [() => receiver?.close(), ...cleanups.splice(0).reverse(), () => server?.stop('SIGKILL')]);
});
afterAll(async () => {
  await db?.drop();
});

/** Kills the test's Redis and stands on its port until a client has tried to reconnect three times. */
async function takeRedisAway(port: number): Promise<{ close(): Promise<void> }> {
  await redis?.stop('SIGKILL');
  const refuser = await refuseConnections(port);
  cleanups.push(() => refuser.close());
  await waitUntil(async () => refuser.attempts() >= 3, 20_000, 'three reconnect attempts');
  return refuser;
}

describe('receiver during a Redis outage', () => {
  it('answers /metrics within a second with the queue depth marked stale, and logs the outage once', async () => {
    const [port] = await freePorts(1);
    redis = await startRedis(port!);
    const logs = receiverLogs();
    app = await buildTestReceiver({
      databaseUrl: db.url,
      prefix: uniquePrefix(),
      redisUrl: `redis://127.0.0.1:${port}`,
      logger: logs.logger,
    });
    const scrape = async () => {
      const started = performance.now();
      const response = await app!.inject({ method: 'GET', url: '/metrics' });
      return { status: response.statusCode, text: response.body, ms: performance.now() - started };
    };
    // Until its connection is ready the receiver reports the depths as unknown too.
    let healthy = await scrape();
    await waitUntil(
      async () => {
        healthy = await scrape();
        return /^ledger_queue_jobs_scrape_ok 1$/m.test(healthy.text);
      },
      10_000,
      'the first read of the queues',
    );
    expect(healthy.text).toMatch(/^ledger_queue_jobs\{queue="stripe-events",state="waiting"\} 0$/m);
    expect(healthy.text).toMatch(/^ledger_ready 1$/m);
    expect(healthy.text).toMatch(/^ledger_dependency_up\{dependency="redis"\} 1$/m);

    const refuser = await takeRedisAway(port!);

    const during = await scrape();
    expect(during.status).toBe(200);
    expect(during.ms).toBeLessThan(1_000);
    expect(during.text).toMatch(/^ledger_queue_jobs_scrape_ok 0$/m);
    expect(during.text).not.toMatch(/^ledger_queue_jobs\{/m);
    expect(during.text).toMatch(/^ledger_webhooks_received_total 0$/m);
    // What the alerts read: this process is not ready because of Redis, PostgreSQL is fine.
    expect(during.text).toMatch(/^ledger_ready 0$/m);
    expect(during.text).toMatch(/^ledger_dependency_up\{dependency="redis"\} 0$/m);
    expect(during.text).toMatch(/^ledger_dependency_up\{dependency="postgres"\} 1$/m);

    const unreachable = messages(logs.lines).filter((msg) => msg.startsWith('Redis unreachable'));
    expect(unreachable).toEqual([expect.stringMatching(new RegExp(`^Redis unreachable at 127\\.0\\.0\\.1:${port} \\(.+\\); retrying$`))]);
    expect(messages(logs.lines).filter((msg) => msg === 'redis connection error' || msg === 'queue error')).toEqual([]);

    await refuser.close();
    redis = await startRedis(port!);
    await waitUntil(async () => messages(logs.lines).some((msg) => msg.startsWith('Redis reachable again')), 20_000, 'the recovery line');
    await waitUntil(async () => /^ledger_queue_jobs_scrape_ok 1$/m.test((await scrape()).text), 10_000, 'queue depths again');
    expect(messages(logs.lines).filter((msg) => msg.startsWith('Redis unreachable'))).toHaveLength(1);
  });
});

describe('receiver with PostgreSQL down', () => {
  it('answers 503 database_unavailable to POST /orders and GET /orders/:id, and logs the outage once', async () => {
    // Port 1 refuses connections everywhere (a port found free may meanwhile be another test's).
    const deadPort = 1;
    const logs = receiverLogs();
    app = await buildTestReceiver({
      databaseUrl: `postgresql://postgres@127.0.0.1:${deadPort}/ledger`,
      prefix: uniquePrefix(),
      logger: logs.logger,
    });
    for (let attempt = 0; attempt < 2; attempt += 1) {
      const created = await app.inject({
        method: 'POST',
        url: '/orders',
        headers: { ...serviceAuth(), 'idempotency-key': `outage-${attempt}` },
        payload: { accountId: 'acct_outage', amount: 1_000, currency: 'usd' },
      });
      expect(created.statusCode).toBe(503);
      expect(created.json()).toEqual({
        error: 'database_unavailable',
        message: expect.stringMatching(/retry later/i),
        requestId: expect.any(String),
      });
    }
    const read = await app.inject({ method: 'GET', url: '/orders/ord_aaaaaaaaaaaaaaaaaaaaaa', headers: serviceAuth() });
    expect(read.statusCode).toBe(503);
    expect(read.json().error).toBe('database_unavailable');
    const outage = messages(logs.lines).filter((msg) => msg.startsWith('PostgreSQL unreachable'));
    expect(outage).toHaveLength(1);
    expect(outage[0]).toMatch(new RegExp(`^PostgreSQL unreachable at 127\\.0\\.0\\.1:${deadPort} \\(.+\\); retrying$`));
    expect(messages(logs.lines)).not.toContain('request failed');
    const started = performance.now();
    const metrics = await app.inject({ method: 'GET', url: '/metrics' });
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(metrics.body).toMatch(/^ledger_dependency_up\{dependency="postgres"\} 0$/m);
    expect(metrics.body).toMatch(/^ledger_ready 0$/m);
  });
});

describe('worker during a Redis outage', () => {
  let worker: RunningProcess | undefined;
  afterEach(async () => {
    await worker?.stop('SIGKILL');
  });

  it('reports not ready, logs the outage once and its end once, and keeps working after it', async () => {
    const [port, healthPort] = await freePorts(2);
    redis = await startRedis(port!);
    worker = startChild({
      script: 'apps/order-worker/src/main.ts',
      env: {
        LOG_LEVEL: 'info',
        DATABASE_URL: db.url,
        REDIS_URL: `redis://127.0.0.1:${port}`,
        QUEUE_PREFIX: uniquePrefix(),
        RECONCILE_INTERVAL_SECONDS: '0',
        WORKER_HEALTH_PORT: String(healthPort),
        WORKER_METRICS_PORT: String(healthPort),
        LOG_FORMAT: 'json',
      },
    });
    await worker.waitFor(/order worker started/);
    const readiness = async () => {
      const started = performance.now();
      const response = await fetch(`http://127.0.0.1:${healthPort}/readyz`);
      return {
        status: response.status,
        body: (await response.json()) as { checks: Record<string, string> },
        ms: performance.now() - started,
      };
    };
    await waitUntil(async () => (await readiness()).status === 200, 10_000, 'the worker to be ready');

    const refuser = await takeRedisAway(port!);
    const down = await readiness();
    expect(down.status).toBe(503);
    expect(down.body.checks).toEqual({ postgres: 'ok', redis: 'down', workers: 'ok' });
    expect(down.ms).toBeLessThan(1_500);
    const metrics = await (await fetch(`http://127.0.0.1:${healthPort}/metrics`)).text();
    expect(metrics).toMatch(/^ledger_ready 0$/m);
    expect(metrics).toMatch(/^ledger_dependency_up\{dependency="redis"\} 0$/m);
    expect(metrics).toMatch(/^ledger_dependency_up\{dependency="postgres"\} 1$/m);

    await refuser.close();
    redis = await startRedis(port!);
    await worker.waitFor(/Redis reachable again/, 20_000);
    await waitUntil(async () => (await readiness()).status === 200, 10_000, 'ready again');

    const logged = worker.lines.map((line) => (JSON.parse(line) as { msg: string }).msg);
    expect(logged.filter((msg) => msg.startsWith('Redis unreachable'))).toHaveLength(1);
    expect(logged.filter((msg) => msg === 'worker error' || msg === 'redis connection error')).toEqual([]);
    // The worker's own grace period is 50 s; a loaded machine can take many seconds to drain.
    expect(await worker.stop('SIGTERM', 45_000), worker.lines.slice(-8).join('\n')).toBe(0);
  });
});
