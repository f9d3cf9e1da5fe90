import type { FastifyInstance } from 'fastify';
import Stripe from 'stripe';
import { afterEach } from 'vitest';
import { buildStripeEmulator, type StripeEmulatorOptions } from '../../packages/stripe-emulator/src/app.js';

/** Any `sk_` key is accepted by the emulator. */
export const EMULATOR_API_KEY = 'sk_test_emulator';

/**
 * The emulator tests' apps: each emulator (with an SDK client pointed at it, no SDK retries) and
 * each receiver a test opens is closed after the test.
 */
export function useEmulatorApps(defaults: StripeEmulatorOptions = {}) {
  const openApps: FastifyInstance[] = [];
  afterEach(async () => {
    await Promise.all(openApps.splice(0).map((app) => app.close()));
  });
  return {
    /** Closes `app` after the test. */
    track<T extends FastifyInstance>(app: T): T {
      openApps.push(app);
      return app;
    },
    async startEmulator(options: StripeEmulatorOptions = {}) {
      const emulator = buildStripeEmulator({ ...defaults, ...options });
      openApps.push(emulator.app);
      const url = await emulator.app.listen({ port: 0, host: '127.0.0.1' });
      const stripe = new Stripe(EMULATOR_API_KEY, { host: '127.0.0.1', port: new URL(url).port, protocol: 'http', maxNetworkRetries: 0 });
      return { ...emulator, url, stripe };
    },
  };
}
