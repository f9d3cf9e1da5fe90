import { EMULATOR_WEBHOOK_SECRET, ensureCanListen, listenError, runService, stripeClientFromEnv, stripeScopeFromEnv } from '@ledger/shared';
import { buildApp } from './app.js';
import { loadReceiverEnv, receiverEnvSchema } from './env.js';
import { warmUpReceiver } from './warm-up.js';
import { ordersAuthFromEnv, rateLimitsFromEnv } from './orders-env.js';

await runService({
  name: 'webhook-receiver',
  help: {
    usage: 'npm run receiver',
    summary:
      'Serves the webhook endpoint, the orders API, health, metrics and Bull Board; configured by the environment only. Runs compiled (npm run build first: node apps/webhook-receiver/dist/server.js); npm start runs it from source.',
    environment: Object.keys(receiverEnvSchema.shape),
    exitCodes: [
      [0, 'stopped by SIGTERM or SIGINT after finishing requests in flight'],
      [1, 'bad environment, PostgreSQL or Redis unreachable at start, port taken, or a failed shutdown'],
      [64, 'unknown option'],
    ],
  },
  loadEnv: loadReceiverEnv,
  dependencies: (env) => ({ postgres: env.DATABASE_URL, redis: env.REDIS_URL }),
  // Below Docker's default 10 s stop timeout: requests in flight finish, then the process exits itself.
  graceMs: 8_000,
  async start({ env, logger, onClose }) {
    // Without a Stripe key the emulator signs the webhooks, with its dev secret unless one is set.
    const webhookSecrets = env.STRIPE_WEBHOOK_SECRET ?? [EMULATOR_WEBHOOK_SECRET];
    const stripeScope = stripeScopeFromEnv(env);
    const app = await buildApp({
      databaseUrl: env.DATABASE_URL,
      redisUrl: env.REDIS_URL,
      queuePrefix: env.QUEUE_PREFIX,
      stripe: stripeClientFromEnv(env),
      stripeScope,
      webhookSecrets,
      adminToken: env.ADMIN_TOKEN,
      ordersAuth: ordersAuthFromEnv(env),
      rateLimits: rateLimitsFromEnv(env),
      bullBoardWrite: env.BULL_BOARD_WRITE,
      trustProxy: env.TRUST_PROXY,
      webhookBodyLimit: env.WEBHOOK_BODY_LIMIT,
      logger,
    });
    // Closing stops accepting (new requests get 503), finishes requests in flight, then the onClose
    // hooks close the queues, Redis and PostgreSQL.
    onClose('http server, queues, redis, postgres', () => app.close());
    // Ready means fast: the hot path runs WARM_UP_EVENTS times before the port opens (warm-up.ts);
    // a port that cannot be listened on stops the start before that.
    await ensureCanListen({ host: env.HOST, port: env.PORT, variable: 'PORT' });
    // A warm-up that fails (Redis or PostgreSQL went away meanwhile) only costs speed: the receiver
    // serves anyway, and its routes answer such an outage as they always do.
    await app.ready();
    const warmUp = await warmUpReceiver(app, { events: env.WARM_UP_EVENTS, webhookSecret: webhookSecrets[0]!, scope: stripeScope }).catch(
      (error: unknown) => {
        logger.warn({ err: error }, 'warm-up did not finish; serving anyway (the first requests may be slower)');
        return undefined;
      },
    );
    const address = await app.listen({ port: env.PORT, host: env.HOST }).catch((error: unknown) => {
      throw listenError(error, { host: env.HOST, port: env.PORT, variable: 'PORT' });
    });
    logger.info(
      { address, stripeApiVersion: env.STRIPE_API_VERSION, warmUpEvents: warmUp?.events ?? 0, warmUpMs: warmUp?.ms },
      `webhook receiver listening on ${address}`,
    );
  },
});
