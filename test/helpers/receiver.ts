import { createStripeClient, type Stripe } from '@ledger/shared';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { buildApp, type ReceiverConfig } from '../../apps/webhook-receiver/src/app.js';
import { TEST_ORDERS_AUTH } from './auth.js';
import { TEST_REDIS_URL } from './env.js';

export const WEBHOOK_SECRETS = ['whsec_test_current_secret', 'whsec_test_previous_secret'];
export const ADMIN_TOKEN = 'test-admin-token-0123456789';
/** Limits no test reaches by accident; the rate limit tests set their own. */
export const GENEROUS_RATE_LIMITS = { windowSeconds: 60, perAccount: 10_000, perIp: 10_000 };

/** A receiver app for `inject`, on the test's own database and queue prefix. */
export async function buildTestReceiver(
  options: { databaseUrl: string; prefix: string; stripe?: Stripe } & Partial<ReceiverConfig>,
): Promise<FastifyInstance> {
  const { databaseUrl, prefix, stripe, ...overrides } = options;
  return buildApp({
    databaseUrl,
    redisUrl: TEST_REDIS_URL,
    queuePrefix: prefix,
    // Routes that reach Stripe get the emulator; the others must not touch this one.
    stripe: stripe ?? createStripeClient('sk_test_unused', 'http://127.0.0.1:9'),
    webhookSecrets: WEBHOOK_SECRETS,
    adminToken: ADMIN_TOKEN,
    ordersAuth: TEST_ORDERS_AUTH,
    rateLimits: GENEROUS_RATE_LIMITS,
    bullBoardWrite: false,
    webhookBodyLimit: 64 * 1024,
    logger: pino({ level: 'silent' }),
    jobBackoffMs: 5,
    ...overrides,
  });
}

const signer = createStripeClient('sk_test_signer', 'http://127.0.0.1:9');

/** A Stripe-Signature header for `payload`, made with the SDK's own test helper. */
export function signatureHeader(payload: string, secret = WEBHOOK_SECRETS[0]!, timestamp = Math.floor(Date.now() / 1000)): string {
  return signer.webhooks.generateTestHeaderString({ payload, secret, timestamp });
}
