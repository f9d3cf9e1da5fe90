import { parseEnv } from '@ledger/shared/env';
import { listenError } from '@ledger/shared/dependencies';
import { runService } from '@ledger/shared/service';
import { buildStripeEmulator } from './app.js';
import { emulatorEnvSchema } from './env.js';

// The emulator as a process of its own: `npm run stripe:emulator`. Point the system at it with
// STRIPE_API_BASE=<printed URL> and any sk_test_ key.
await runService({
  name: 'stripe-emulator',
  help: {
    usage: 'npm run stripe:emulator',
    summary:
      'A Stripe stand-in for development, tests and the demo: PaymentIntents, the events list and signed webhook deliveries. State is in memory.',
    environment: Object.keys(emulatorEnvSchema.shape),
    exitCodes: [
      [0, 'stopped by SIGTERM or SIGINT'],
      [1, 'bad environment or port taken'],
      [64, 'unknown option'],
    ],
  },
  loadEnv: () => parseEnv(emulatorEnvSchema),
  graceMs: 5_000,
  async start({ env, logger, onClose }) {
    const { app } = buildStripeEmulator({
      webhookUrl: env.STRIPE_WEBHOOK_URL,
      webhookSecret: env.STRIPE_WEBHOOK_SECRET,
      ...(env.STRIPE_EMULATOR_API_VERSION ? { apiVersion: env.STRIPE_EMULATOR_API_VERSION } : {}),
      webhookApiVersion: env.STRIPE_WEBHOOK_API_VERSION,
      endpoints: env.STRIPE_WEBHOOK_URL_2
        ? [{ url: env.STRIPE_WEBHOOK_URL_2, secret: env.STRIPE_WEBHOOK_SECRET_2, apiVersion: env.STRIPE_WEBHOOK_API_VERSION_2 }]
        : [],
      logger,
    });
    onClose('http server and deliveries', () => app.close());
    const url = await app.listen({ port: env.STRIPE_EMULATOR_PORT, host: env.STRIPE_EMULATOR_HOST }).catch((error: unknown) => {
      throw listenError(error, { host: env.STRIPE_EMULATOR_HOST, port: env.STRIPE_EMULATOR_PORT, variable: 'STRIPE_EMULATOR_PORT' });
    });
    logger.info(
      { url, webhookUrl: env.STRIPE_WEBHOOK_URL ?? null },
      `Stripe emulator on ${url} (STRIPE_API_BASE=${url}); delivering webhooks to ${env.STRIPE_WEBHOOK_URL ?? 'nowhere'}`,
    );
  },
});
