import Stripe from 'stripe';

export { Stripe };

/** Secret key the embedded emulator accepts; never a real key. */
export const EMULATOR_SECRET_KEY = 'sk_test_emulator';

/**
 * A Stripe SDK client. `apiBase` points it at any Stripe-compatible server (the emulator,
 * stripe-mock); the SDK's own retries reuse the idempotency key, so a retried create is safe.
 */
export function createStripeClient(secretKey: string, apiBase?: string): Stripe {
  const config: Stripe.StripeConfig = { maxNetworkRetries: 2, timeout: 10_000 };
  if (apiBase) {
    const url = new URL(apiBase);
    const protocol = url.protocol === 'http:' ? 'http' : 'https';
    config.host = url.hostname;
    config.port = url.port || (protocol === 'http' ? 80 : 443);
    config.protocol = protocol;
  }
  return new Stripe(secretKey, config);
}

/** Webhook signing secret the emulator uses by default; accepted only when no Stripe key is set. */
export const EMULATOR_WEBHOOK_SECRET = 'whsec_emulator_dev_secret';

/** Where the built-in emulator listens by default (stripe-mock's port, so either can stand in). */
export const EMULATOR_API_BASE = 'http://127.0.0.1:12111';

/**
 * The Stripe client the environment asks for: the real API (or `STRIPE_API_BASE`) with
 * `STRIPE_SECRET_KEY`, else the built-in emulator (at `STRIPE_API_BASE`, `STRIPE_EMULATOR_URL` or
 * its default address).
 */
export function stripeClientFromEnv(env: {
  STRIPE_SECRET_KEY?: string | undefined;
  STRIPE_API_BASE?: string | undefined;
  STRIPE_EMULATOR_URL?: string | undefined;
}): Stripe {
  return env.STRIPE_SECRET_KEY
    ? createStripeClient(env.STRIPE_SECRET_KEY, env.STRIPE_API_BASE)
    : createStripeClient(EMULATOR_SECRET_KEY, env.STRIPE_API_BASE ?? env.STRIPE_EMULATOR_URL ?? EMULATOR_API_BASE);
}
