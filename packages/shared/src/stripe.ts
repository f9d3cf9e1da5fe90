import Stripe from 'stripe';

export { Stripe };

/** Secret key the embedded emulator accepts; never a real key. */
const EMULATOR_SECRET_KEY = 'sk_test_emulator';

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

/** Which Stripe events this deployment applies: its key's mode, and the connected accounts it serves. */
export interface StripeScope {
  livemode: boolean;
  connectedAccounts: ReadonlySet<string>;
}

/** The scope a key implies (`sk_live_…`/`rk_live_…` is live; the emulator and test keys are test mode). */
export function stripeScopeFromEnv(env: {
  STRIPE_SECRET_KEY?: string | undefined;
  STRIPE_CONNECTED_ACCOUNTS?: string[] | undefined;
}): StripeScope {
  return {
    livemode: /^(sk|rk)_live_/.test(env.STRIPE_SECRET_KEY ?? ''),
    connectedAccounts: new Set(env.STRIPE_CONNECTED_ACCOUNTS ?? []),
  };
}

/**
 * Why an event is not this deployment's, or undefined when it is: a live event reaching a test
 * deployment (or the reverse), or an event of a connected account this deployment does not serve.
 * https://docs.stripe.com/connect/webhooks
 */
export function eventOutOfScope(event: { livemode: boolean; account?: string | null }, scope: StripeScope): string | undefined {
  if (event.livemode !== scope.livemode) return event.livemode ? 'live_event_in_test_mode' : 'test_event_in_live_mode';
  if (event.account && !scope.connectedAccounts.has(event.account)) return 'connected_account';
  return undefined;
}
