import { EMULATOR_WEBHOOK_SECRET, createLogger, runMain, stripeClientFromEnv, stripeScopeFromEnv } from '@ledger/shared';
import { buildApp } from './app.js';
import { loadReceiverEnv } from './env.js';
import { ordersAuthFromEnv, rateLimitsFromEnv } from './orders-env.js';

await runMain(async () => {
  const env = loadReceiverEnv();
  const logger = createLogger('webhook-receiver', env.LOG_LEVEL);
  const app = await buildApp({
    databaseUrl: env.DATABASE_URL,
    redisUrl: env.REDIS_URL,
    queuePrefix: env.QUEUE_PREFIX,
    stripe: stripeClientFromEnv(env),
    stripeScope: stripeScopeFromEnv(env),
    // Without a Stripe key the emulator signs the webhooks, with its dev secret unless one is set.
    webhookSecrets: env.STRIPE_WEBHOOK_SECRET ?? [EMULATOR_WEBHOOK_SECRET],
    adminToken: env.ADMIN_TOKEN,
    ordersAuth: ordersAuthFromEnv(env),
    rateLimits: rateLimitsFromEnv(env),
    bullBoardWrite: env.BULL_BOARD_WRITE,
    trustProxy: env.TRUST_PROXY,
    webhookBodyLimit: env.WEBHOOK_BODY_LIMIT,
    logger,
  });

  // SIGTERM: stop accepting (new requests get 503), finish requests in flight, then the onClose
  // hooks close the queues, Redis and PostgreSQL in that order.
  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    logger.info({ signal }, 'shutting down: finishing requests in flight');
    try {
      await app.close();
      logger.info('webhook receiver stopped');
      process.exit(0);
    } catch (error) {
      logger.error({ err: error }, 'shutdown failed');
      process.exit(1);
    }
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));

  const address = await app.listen({ port: env.PORT, host: env.HOST });
  logger.info({ address }, `webhook receiver listening on ${address}`);
});
