import Stripe from 'stripe';
import { z } from 'zod';
import { observedHttpClient, stripeCallListeners } from './stripe-calls.js';

export { Stripe };

/** Secret key the embedded emulator accepts; never a real key. */
const EMULATOR_SECRET_KEY = 'sk_test_emulator';

/** Options of {@link createStripeClient}. */
export interface StripeClientOptions {
  /** Base URL of a Stripe-compatible server (the emulator, stripe-mock); default Stripe's own API. */
  apiBase?: string | undefined;
  /** `Stripe-Version` of our own requests; default the SDK's pinned `Stripe.API_VERSION`. */
  apiVersion?: string | undefined;
  /** Retries of the SDK on 409, 5xx, network errors and `Stripe-Should-Retry: true`; default 2. */
  maxNetworkRetries?: number | undefined;
}

/**
 * A Stripe SDK client. `apiBase` points it at any Stripe-compatible server (the emulator,
 * stripe-mock). The SDK retries with exponential backoff and jitter (0.5 s doubling, at most 5 s),
 * honours `Stripe-Should-Retry`, and keys every POST with an Idempotency-Key it keeps across its
 * retries (ours when given), so a retried create is safe. It does not retry a 429 unless Stripe
 * says `Stripe-Should-Retry: true`: the jobs back off on it instead (see the order worker).
 * Every HTTP attempt reaches {@link observeStripeCalls}' listeners (metrics).
 * https://docs.stripe.com/error-low-level, https://docs.stripe.com/rate-limits
 */
export function createStripeClient(secretKey: string, apiBaseOrOptions?: string | StripeClientOptions): Stripe {
  const options = typeof apiBaseOrOptions === 'string' ? { apiBase: apiBaseOrOptions } : (apiBaseOrOptions ?? {});
  const listeners: ReturnType<typeof stripeCallListeners> = new Set();
  const config: Stripe.StripeConfig = {
    maxNetworkRetries: options.maxNetworkRetries ?? 2,
    timeout: 10_000,
    httpClient: observedHttpClient(Stripe.createNodeHttpClient(), (call) => {
      for (const listener of listeners) listener(call);
    }),
  };
  if (options.apiVersion) config.apiVersion = options.apiVersion as Stripe.StripeConfig['apiVersion'];
  if (options.apiBase) {
    const url = new URL(options.apiBase);
    const protocol = url.protocol === 'http:' ? 'http' : 'https';
    config.host = url.hostname;
    config.port = url.port || (protocol === 'http' ? 80 : 443);
    config.protocol = protocol;
  }
  const stripe = new Stripe(secretKey, config);
  stripeCallListeners(stripe, listeners);
  return stripe;
}

/** Stripe API versions: `2026-10-28.endive`, `2024-06-20`. https://docs.stripe.com/api/versioning */
const API_VERSION = /^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$/;

/** The Stripe client variables both apps read (spread into their env schemas). */
export const stripeClientEnvShape = {
  /** `Stripe-Version` of our own API calls; default the version the installed SDK is pinned to. */
  STRIPE_API_VERSION: z
    .string()
    .trim()
    .regex(API_VERSION, 'must be a Stripe API version such as 2026-10-28.endive or 2024-06-20 (YYYY-MM-DD, optionally .name)')
    .default(Stripe.API_VERSION),
  /** Retries of one Stripe call by the SDK (409, 5xx, network errors, Stripe-Should-Retry: true). */
  STRIPE_MAX_NETWORK_RETRIES: z.coerce.number().int().min(0).max(10).default(2),
};

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
  STRIPE_API_VERSION?: string | undefined;
  STRIPE_MAX_NETWORK_RETRIES?: number | undefined;
}): Stripe {
  const options = { apiVersion: env.STRIPE_API_VERSION, maxNetworkRetries: env.STRIPE_MAX_NETWORK_RETRIES };
  return env.STRIPE_SECRET_KEY
    ? createStripeClient(env.STRIPE_SECRET_KEY, { ...options, apiBase: env.STRIPE_API_BASE })
    : createStripeClient(EMULATOR_SECRET_KEY, {
        ...options,
        apiBase: env.STRIPE_API_BASE ?? env.STRIPE_EMULATOR_URL ?? EMULATOR_API_BASE,
      });
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
