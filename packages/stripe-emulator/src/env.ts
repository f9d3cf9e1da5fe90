import { commaList, commonEnvSchema } from '@ledger/shared/env';
import { EMULATOR_API_BASE, EMULATOR_WEBHOOK_SECRET } from '@ledger/shared/stripe';
import { z } from 'zod';
import { apiVersionSchema } from './versions.js';

// Listen where the rest of the system looks for the emulator when STRIPE_API_BASE is unset.
const defaultAddress = new URL(EMULATOR_API_BASE);

/** The variables the standalone emulator reads (`npm run stripe:emulator`). */
export const emulatorEnvSchema = z.object({
  LOG_LEVEL: commonEnvSchema.shape.LOG_LEVEL,
  LOG_FORMAT: commonEnvSchema.shape.LOG_FORMAT,
  STRIPE_EMULATOR_PORT: z
    .string()
    .regex(/^\d{1,5}$/, 'must be a port number (0-65535)')
    .transform(Number)
    .refine((port) => port <= 65_535, 'must be a port number (0-65535)')
    .default(Number(defaultAddress.port)),
  STRIPE_EMULATOR_HOST: z.string().min(1).default(defaultAddress.hostname),
  /** Where events are delivered; unset: nowhere (they are still listed by `GET /v1/events`). */
  STRIPE_WEBHOOK_URL: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
  /** Signing secret(s), comma separated like the receiver's: one `v1=` signature per secret. */
  STRIPE_WEBHOOK_SECRET: commaList.pipe(z.array(z.string()).min(1, 'must hold at least one secret')).default([EMULATOR_WEBHOOK_SECRET]),
  /** The account's default API version (events are created at it); unset: the stripe SDK's. */
  STRIPE_EMULATOR_API_VERSION: apiVersionSchema.optional(),
  /** The version STRIPE_WEBHOOK_URL renders events at; unset: each event's own. */
  STRIPE_WEBHOOK_API_VERSION: apiVersionSchema.optional(),
  /** A second endpoint (Stripe's upgrade recipe: the new version next to the old). */
  STRIPE_WEBHOOK_URL_2: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
  STRIPE_WEBHOOK_SECRET_2: commaList.pipe(z.array(z.string()).min(1, 'must hold at least one secret')).default([EMULATOR_WEBHOOK_SECRET]),
  STRIPE_WEBHOOK_API_VERSION_2: apiVersionSchema.optional(),
});

/** The parsed environment. */
export type EmulatorEnv = z.infer<typeof emulatorEnvSchema>;
