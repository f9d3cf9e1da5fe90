import { parseEnv, runMain } from '@ledger/shared/env';
import { createLogger } from '@ledger/shared/logger';
import { buildStripeEmulator } from './app.js';
import { emulatorEnvSchema } from './env.js';

// The emulator as a process of its own: `npm run stripe:emulator`. Point the system at it with
// STRIPE_API_BASE=<printed URL> and any sk_test_ key.
await runMain(async () => {
  const env = parseEnv(emulatorEnvSchema);
  const logger = createLogger('stripe-emulator', env.LOG_LEVEL);
  const { app } = buildStripeEmulator({
    webhookUrl: env.STRIPE_WEBHOOK_URL,
    webhookSecret: env.STRIPE_WEBHOOK_SECRET,
    logger,
  });
  const url = await app.listen({ port: env.STRIPE_EMULATOR_PORT, host: env.STRIPE_EMULATOR_HOST });
  logger.info(
    { url, webhookUrl: env.STRIPE_WEBHOOK_URL ?? null },
    `Stripe emulator on ${url} (STRIPE_API_BASE=${url}); delivering webhooks to ${env.STRIPE_WEBHOOK_URL ?? 'nowhere'}`,
  );

  let closing = false;
  const shutdown = (signal: NodeJS.Signals): void => {
    if (closing) return;
    closing = true;
    logger.info({ signal }, 'shutting down');
    app.close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
});
