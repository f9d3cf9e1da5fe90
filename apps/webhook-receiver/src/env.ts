import { checkRedisEnv, commaList, commonEnvSchema, parseEnv, stripeClientEnvShape } from '@ledger/shared';
import { z } from 'zod';
import { checkOrdersEnv, ordersEnvShape } from './orders-env.js';

export const receiverEnvSchema = commonEnvSchema
  .extend({
    ...stripeClientEnvShape,
    PORT: z.coerce.number().int().min(0).max(65535).default(3000),
    HOST: z.string().min(1).default('127.0.0.1'),
    /** One or more `whsec_…` secrets, comma separated: any of them verifies (secret rotation). */
    STRIPE_WEBHOOK_SECRET: commaList
      .pipe(
        z
          .array(z.string().regex(/^whsec_\S+$/, 'must hold whsec_… secrets, comma separated'))
          .min(1, 'must hold at least one whsec_… secret'),
      )
      .optional(),
    /** Bearer token (or basic-auth password) for /admin/* and Bull Board; unset disables them. */
    ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
    /** Largest webhook body accepted, in bytes. */
    WEBHOOK_BODY_LIMIT: z.coerce
      .number()
      .int()
      .min(1024)
      .default(512 * 1024),
    ...ordersEnvShape,
  })
  .superRefine((env, ctx) => {
    checkOrdersEnv(env, ctx);
    checkRedisEnv(env, ctx);
    // The emulator signs with its own dev secret; a real Stripe key needs the real endpoint secret.
    if (env.STRIPE_SECRET_KEY && !env.STRIPE_WEBHOOK_SECRET) {
      ctx.addIssue({ code: 'custom', path: ['STRIPE_WEBHOOK_SECRET'], message: 'is required when STRIPE_SECRET_KEY is set' });
    }
  });

export type ReceiverEnv = z.infer<typeof receiverEnvSchema>;

export function loadReceiverEnv(source: NodeJS.ProcessEnv = process.env): ReceiverEnv {
  return parseEnv(receiverEnvSchema, source);
}
