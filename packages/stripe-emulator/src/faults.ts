import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ConfigError } from './config.js';

/**
 * `POST /_emulator/config {"apiFaults": {...}}`: the next `count` API requests (under `path`, a
 * prefix such as `/v1/events`; default every `/v1` request) are answered with `status` and a
 * Stripe-shaped error, with `Stripe-Should-Retry` when `shouldRetry` is given. `null` clears it.
 * https://docs.stripe.com/error-low-level
 */
export const apiFaultSchema = z
  .object({
    status: z.union([z.literal(429), z.literal(500), z.literal(503)]),
    count: z.int().min(0),
    path: z.string().startsWith('/v1').optional(),
    shouldRetry: z.boolean().optional(),
  })
  .strict()
  .nullable();

export type ApiFault = NonNullable<z.infer<typeof apiFaultSchema>>;

/** One API request the emulator answered (the last 500 are kept), for tests to check what was sent. */
export interface ApiRequestRecord {
  method: string;
  path: string;
  status: number;
  idempotencyKey: string | undefined;
  requestId: string;
  fault: boolean;
}

const KEPT_REQUESTS = 500;

/**
 * Injected API faults and the request log. Registers on the root instance: an onRequest hook that
 * answers faulted `/v1` requests before their route runs, the `apiFaults` key of the config route
 * (taken out before the delivery knobs are validated), `apiFaults` in `GET /_emulator/stats`, and
 * `GET /_emulator/requests`.
 */
export function registerApiFaults(app: FastifyInstance): void {
  let fault: ApiFault | undefined;
  let served = 0;
  const requests: ApiRequestRecord[] = [];
  const faulted = new WeakSet<object>();

  app.addHook('onRequest', async (request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    if (!path.startsWith('/v1') || !fault || fault.count <= 0 || !path.startsWith(fault.path ?? '/v1')) return;
    fault.count -= 1;
    served += 1;
    faulted.add(request);
    if (fault.shouldRetry !== undefined) reply.header('Stripe-Should-Retry', String(fault.shouldRetry));
    const body =
      fault.status === 429
        ? { type: 'rate_limit_error', code: 'rate_limit', message: 'Too many requests hit the API too quickly (emulated fault).' }
        : { type: 'api_error', message: `An error occurred with our API (emulated ${fault.status} fault, request ${request.id}).` };
    return reply.code(fault.status).send({ error: body });
  });

  app.addHook('onResponse', async (request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    if (!path.startsWith('/v1')) return;
    const key = request.headers['idempotency-key'];
    requests.push({
      method: request.method,
      path,
      status: reply.statusCode,
      idempotencyKey: typeof key === 'string' ? key : undefined,
      requestId: request.id,
      fault: faulted.has(request),
    });
    if (requests.length > KEPT_REQUESTS) requests.shift();
  });

  app.addHook('preHandler', async (request) => {
    if (request.method !== 'POST' || request.url.split('?')[0] !== '/_emulator/config') return;
    const body = request.body as Record<string, unknown> | undefined;
    if (!body || typeof body !== 'object' || !('apiFaults' in body)) return;
    const parsed = apiFaultSchema.safeParse(body.apiFaults);
    if (!parsed.success) {
      throw new ConfigError(parsed.error.issues.map((i) => `apiFaults.${i.path.join('.')}: ${i.message}`).join('; '));
    }
    fault = parsed.data ?? undefined;
    delete body.apiFaults;
  });

  app.addHook('onSend', async (request, reply, payload) => {
    const path = request.url.split('?')[0];
    if (request.method !== 'GET' || path !== '/_emulator/stats' || reply.statusCode !== 200 || typeof payload !== 'string') return payload;
    return JSON.stringify({ ...JSON.parse(payload), apiFaults: { served, pending: fault?.count ?? 0 } });
  });

  app.get('/_emulator/requests', async () => requests);
}
