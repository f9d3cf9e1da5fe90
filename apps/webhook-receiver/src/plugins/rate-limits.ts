import rateLimit, { normalizeIP } from '@fastify/rate-limit';
import { createProducerConnection } from '@ledger/shared';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { HttpError } from '../errors.js';

/** Requests allowed per window on each limited route, per account and per client address. */
export interface RateLimitSettings {
  windowSeconds: number;
  perAccount: number;
  perIp: number;
  /** Spending calls (debits, holds, captures, releases) per account and route; far more than orders. */
  spendingPerAccount?: number;
}

/** An API that charges per request debits at its own request rate: 100/s per account by default. */
export const DEFAULT_SPENDING_PER_ACCOUNT = 6_000;

export interface RateLimits {
  /** Counts the request against its client address on this route; throws a 429 over the limit. */
  byIp(request: FastifyRequest): Promise<void>;
  /** Counts the request against `accountId` on this route; throws a 429 over the limit. */
  byAccount(request: FastifyRequest, accountId: string): Promise<void>;
  /** Counts a spending call against `accountId`'s spending budget on this route; throws a 429 over it. */
  spending(request: FastifyRequest, accountId: string): Promise<void>;
}

declare module 'fastify' {
  interface FastifyInstance {
    rateLimits: RateLimits;
  }
}

const limitKey = Symbol('rate limit key');
type KeyedRequest = FastifyRequest & { [limitKey]?: string };

/**
 * Fixed-window limits in Redis through @fastify/rate-limit's store, so every receiver process
 * counts against the same budget. Keys: `<prefix>:rate-limit:<scope>:<route>:<account or address>`.
 *
 * When Redis does not answer, a check lets the request through (logged and counted in
 * `ledger_rate_limit_unavailable_total`): creating an order needs only PostgreSQL and Stripe, so a
 * Redis outage should not stop sales, and Stripe still refuses excess with its own 429 (answered
 * 503 here). The limits guard a budget, not money; the ledger does not depend on them.
 */
export default fp(
  async function rateLimitsPlugin(app: FastifyInstance, options: RateLimitSettings & { redisUrl: string; prefix: string }) {
    // A connection of its own, failing fast (no offline queue, short timeout): a check never waits
    // behind BullMQ's commands, and a Redis outage costs a request at most half a second.
    const redis = createProducerConnection(options.redisUrl, { connectionName: 'rate-limits', commandTimeout: 500 });
    redis.on('error', (error) => app.log.warn({ err: error }, 'rate limit redis connection error'));
    app.addHook('onClose', async () => {
      redis.disconnect();
    });

    await app.register(rateLimit, {
      global: false,
      redis,
      nameSpace: `${options.prefix}:rate-limit:`,
      timeWindow: options.windowSeconds * 1000,
      max: (_request, key) =>
        key.startsWith('ip:')
          ? options.perIp
          : key.startsWith('spending:')
            ? (options.spendingPerAccount ?? DEFAULT_SPENDING_PER_ACCOUNT)
            : options.perAccount,
      keyGenerator: (request) => (request as KeyedRequest)[limitKey] ?? '',
      // Store errors reach enforce() below, which decides (fail open, counted).
      skipOnError: false,
    });
    const check = app.createRateLimit();

    async function enforce(request: FastifyRequest, scope: 'ip' | 'account' | 'spending', subject: string): Promise<void> {
      const route = `${request.method} ${request.routeOptions.url}`;
      (request as KeyedRequest)[limitKey] = `${scope}:${route}:${subject}`;
      let limit: Awaited<ReturnType<typeof check>>;
      try {
        limit = await check(request);
      } catch (error) {
        app.metrics.rateLimitUnavailable.inc({ scope });
        request.log.warn({ err: error, scope }, 'rate limit unavailable: request let through');
        return;
      }
      if (limit.isAllowed || !limit.isExceeded) return;
      app.metrics.rateLimited.inc({ route, scope });
      const retryAfter = Math.max(1, limit.ttlInSeconds);
      throw new HttpError(
        429,
        'rate_limited',
        `Too many requests from this ${scope === 'ip' ? 'address' : 'account'}: at most ${limit.max} per ${options.windowSeconds} s on ${route}; retry in ${retryAfter} s.`,
        { 'retry-after': String(retryAfter) },
      );
    }

    app.decorate('rateLimits', {
      byIp: (request) => enforce(request, 'ip', normalizeIP(request.ip)),
      byAccount: (request, accountId) => enforce(request, 'account', accountId),
      spending: (request, accountId) => enforce(request, 'spending', accountId),
    } satisfies RateLimits);
  },
  { name: 'rate-limits', dependencies: ['metrics'] },
);
