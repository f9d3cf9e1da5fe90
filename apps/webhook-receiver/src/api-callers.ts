import type { FastifyInstance, FastifyRequest } from 'fastify';
import { HttpError } from './errors.js';
import { errorResponse } from './http-schemas.js';
import { createOrdersAuthenticator, type OrdersAuthConfig, type OrdersCaller } from './orders-auth.js';

// Who calls the orders and spending APIs: one authentication for both (a user's JWT or a service
// key of ORDERS_API_KEYS), run as an onRequest hook of the plugin that registers their routes.

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the authentication hook of the orders and spending routes. */
    ordersCaller: OrdersCaller | null;
  }
  interface FastifyContextConfig {
    /** Count requests to this route against the per-address limit (callers without a service key). */
    rateLimited?: boolean;
  }
}

/** End users (a JWT whose `sub` is their account) or the merchant's backend (a service key). */
export const callerSecurity: Record<string, string[]>[] = [{ userJwt: [] }, { serviceKey: [] }];
/** The merchant's backend only. */
export const serviceSecurity: Record<string, string[]>[] = [{ serviceKey: [] }];

export const unauthorized = errorResponse('No or bad credentials (missing, malformed, expired, forged, wrong issuer or audience)', {
  'WWW-Authenticate': { description: '`Bearer realm="orders"` (with `error="invalid_token"` for a bad token)', type: 'string' },
});
export const rateLimited = errorResponse('Over the per-account or per-address rate limit', {
  'Retry-After': { description: 'Seconds until the window resets', type: 'integer' },
});

/**
 * Authenticates every request of this plugin's routes (401 before any route runs). Routes marked
 * `rateLimited` count callers other than the merchant's backend per address first: the backend
 * calls for all its customers from a few addresses, so only its per-account limit applies.
 */
export function authenticateCallers(app: FastifyInstance, auth: OrdersAuthConfig): void {
  const authenticate = createOrdersAuthenticator(auth);
  app.decorateRequest('ordersCaller', null);
  app.addHook('onRequest', async (request) => {
    const outcome = await authenticate(request.headers.authorization);
    const caller = 'caller' in outcome ? outcome.caller : null;
    if (request.routeOptions.config.rateLimited && caller?.kind !== 'service') await app.rateLimits.byIp(request);
    if ('failure' in outcome) {
      const challenge = outcome.failure === 'invalid' ? `Bearer realm="orders", error="invalid_token"` : 'Bearer realm="orders"';
      throw new HttpError(401, outcome.failure === 'invalid' ? 'invalid_token' : 'unauthorized', outcome.message, {
        'www-authenticate': challenge,
      });
    }
    request.ordersCaller = caller;
  });
}

/** The caller the hook authenticated (it answers 401 before any route runs). */
export function callerOf(request: FastifyRequest): OrdersCaller {
  if (!request.ordersCaller) throw new Error('route reached without an authenticated caller');
  return request.ordersCaller;
}
