import { EMULATOR_WEBHOOK_SECRET } from '@ledger/shared/stripe';
import Stripe from 'stripe';
import { z } from 'zod';
import { randomSeed, seededRandom, type Random } from './random.js';
import { apiVersionSchema } from './versions.js';

const rate = z.number().min(0).max(1);
const secrets = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);
const enabledEvents = z.array(z.string().min(1)).min(1);

/**
 * A webhook endpoint besides `webhookUrl`, as Stripe's upgrade recipe adds one at the new version
 * next to the old (https://docs.stripe.com/webhooks/versioning): every event goes to each endpoint
 * that listens to its type, rendered at the endpoint's version and signed with its own secret(s).
 */
export const endpointSchema = z.strictObject({
  url: z.url({ protocol: /^https?$/ }),
  secret: secrets,
  /** The version events are rendered at for this endpoint; default: each event's own `api_version`. */
  apiVersion: apiVersionSchema.optional(),
  /** Default `["*"]`. */
  enabledEvents: enabledEvents.optional(),
});

/**
 * The delivery knobs, accepted by `buildStripeEmulator` and by `POST /_emulator/config`
 * (where every field is optional and only the given ones change).
 */
export const deliveryKnobsSchema = z.object({
  /**
   * The account's default API version: events are created at it (`api_version`) and `GET /v1/events`
   * renders each event at the version it was created at. Changing it is the dashboard's "upgrade".
   */
  apiVersion: apiVersionSchema,
  /** Where events are POSTed; `undefined`/`null`: nowhere (events are still listed by `GET /v1/events`). */
  webhookUrl: z.url({ protocol: /^https?$/ }).nullish(),
  /**
   * Signing secret(s); default the shared dev secret the receiver accepts when it runs against the
   * emulator. Several give one `v1=` signature each, as Stripe does while a secret rolls.
   */
  webhookSecret: secrets,
  /** Event types delivered to the endpoint, `*` wildcards allowed (Stripe's `enabled_events`). */
  enabledEvents,
  /** The version `webhookUrl` renders events at; `null`/unset: each event's own `api_version`. */
  webhookApiVersion: apiVersionSchema.nullish(),
  /** More endpoints (`we_1`, `we_2`, … in this order; `webhookUrl` is `we_0`); a new list replaces the old. */
  endpoints: z.array(endpointSchema).max(16),
  /** Share of events delivered more than once (twice; one in four of those three times). */
  duplicateRate: rate,
  /** Share of events never delivered; they stay `pending_webhooks: 1` for reconciliation to find. */
  dropRate: rate,
  /** `[min, max]` milliseconds of random delay before each delivery (not before retries). */
  delayMs: z.tuple([z.int().min(0), z.int().min(0)]).refine(([min, max]) => min <= max, 'delayMs must be [min, max] with min <= max'),
  /** Take queued deliveries in random order instead of first-in first-out. */
  reorder: z.boolean(),
  /** Deliveries in flight at once. */
  concurrency: z.int().min(1).max(1000),
  /**
   * Stripe retries a failed delivery with exponential backoff for three days; here attempt `n`
   * (n >= 2) waits `baseDelayMs * 2^(n-2)` after the previous failure, up to `attempts` in all.
   */
  retry: z.object({ attempts: z.int().min(1).max(100), baseDelayMs: z.int().min(0) }).partial(),
  /** Milliseconds an attempt may take before it is aborted and counted as failed. */
  timeoutMs: z.int().min(1),
  /** Seed of the RNG behind drop, duplicate, delay and reorder decisions. */
  seed: z.int(),
});

/** Delivery knobs as callers give them: every field optional. */
export type DeliveryKnobs = Partial<z.input<typeof deliveryKnobsSchema>>;

const patchSchema = deliveryKnobsSchema.partial().strict();

/** The knobs in force. */
export interface EmulatorConfig {
  apiVersion: string;
  webhookUrl: string | undefined;
  webhookSecrets: string[];
  enabledEvents: string[];
  webhookApiVersion: string | undefined;
  endpoints: Array<{ url: string; secrets: string[]; apiVersion: string | undefined; enabledEvents: string[] }>;
  duplicateRate: number;
  dropRate: number;
  delayMs: [number, number];
  reorder: boolean;
  concurrency: number;
  retry: { attempts: number; baseDelayMs: number };
  timeoutMs: number;
  seed: number;
}

/** A webhook endpoint in force: `we_0` is `webhookUrl`, `we_1`… the `endpoints` list. */
export interface WebhookEndpoint {
  id: string;
  url: string;
  secrets: string[];
  /** `undefined`: each event is rendered at its own `api_version`. */
  apiVersion: string | undefined;
  enabledEvents: string[];
}

/** What the config route and `controller.config()` show: everything but the secrets. */
export type PublicConfig = Omit<EmulatorConfig, 'webhookSecrets' | 'endpoints'> & {
  webhookSecretCount: number;
  endpoints: Array<Omit<EmulatorConfig['endpoints'][number], 'secrets'> & { id: string; secretCount: number }>;
};

/** A knob value that failed validation; the message names the knob. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Holds the knobs and the seeded RNG; updates are validated as a whole before they apply. */
export class ConfigStore {
  private config: EmulatorConfig;
  private rng: Random;

  constructor(initial: DeliveryKnobs) {
    const seed = initial.seed ?? randomSeed();
    this.config = {
      apiVersion: Stripe.API_VERSION,
      webhookUrl: undefined,
      webhookSecrets: [EMULATOR_WEBHOOK_SECRET],
      enabledEvents: ['*'],
      webhookApiVersion: undefined,
      endpoints: [],
      duplicateRate: 0,
      dropRate: 0,
      delayMs: [0, 0],
      reorder: false,
      concurrency: 4,
      retry: { attempts: 8, baseDelayMs: 100 },
      timeoutMs: 10_000,
      seed,
    };
    this.rng = seededRandom(seed);
    this.update(initial);
  }

  /** The knobs in force; read at each delivery, so updates apply to queued deliveries too. */
  get current(): Readonly<EmulatorConfig> {
    return this.config;
  }

  /** Applies the given knobs; a new `seed` restarts the RNG so the run can be replayed. */
  update(patch: unknown): PublicConfig {
    const parsed = patchSchema.safeParse(patch);
    if (!parsed.success) {
      throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.') || 'config'}: ${i.message}`).join('; '));
    }
    const { webhookUrl, webhookSecret, webhookApiVersion, endpoints, retry, seed, ...rest } = parsed.data;
    const next: EmulatorConfig = { ...this.config, ...definedOnly(rest), retry: { ...this.config.retry, ...definedOnly(retry ?? {}) } };
    if (webhookUrl !== undefined) next.webhookUrl = webhookUrl ?? undefined;
    if (webhookApiVersion !== undefined) next.webhookApiVersion = webhookApiVersion ?? undefined;
    if (endpoints !== undefined) {
      next.endpoints = endpoints.map((endpoint) => ({
        url: endpoint.url,
        secrets: typeof endpoint.secret === 'string' ? [endpoint.secret] : endpoint.secret,
        apiVersion: endpoint.apiVersion,
        enabledEvents: endpoint.enabledEvents ?? ['*'],
      }));
    }
    if (webhookSecret !== undefined) next.webhookSecrets = typeof webhookSecret === 'string' ? [webhookSecret] : webhookSecret;
    if (seed !== undefined) {
      next.seed = seed;
      this.rng = seededRandom(seed);
    }
    this.config = next;
    return this.publicView();
  }

  /** The config without its secrets. */
  publicView(): PublicConfig {
    const { webhookSecrets, endpoints, ...rest } = this.config;
    return {
      ...structuredClone(rest),
      webhookSecretCount: webhookSecrets.length,
      endpoints: endpoints.map(({ secrets: endpointSecrets, ...endpoint }, index) => ({
        id: `we_${index + 1}`,
        ...structuredClone(endpoint),
        secretCount: endpointSecrets.length,
      })),
    };
  }

  /** The endpoints in force, `webhookUrl` first; read at each delivery. */
  webhookEndpoints(): WebhookEndpoint[] {
    const { webhookUrl, webhookSecrets, webhookApiVersion, enabledEvents: primaryEvents, endpoints } = this.config;
    const all: WebhookEndpoint[] = endpoints.map((endpoint, index) => ({ id: `we_${index + 1}`, ...endpoint }));
    if (webhookUrl !== undefined) {
      all.unshift({ id: 'we_0', url: webhookUrl, secrets: webhookSecrets, apiVersion: webhookApiVersion, enabledEvents: primaryEvents });
    }
    return all;
  }

  /** The endpoint with this id, if it is still configured. */
  webhookEndpoint(id: string): WebhookEndpoint | undefined {
    return this.webhookEndpoints().find((endpoint) => endpoint.id === id);
  }

  /** The next number of the seeded RNG. */
  random(): number {
    return this.rng();
  }
}

function definedOnly<T extends object>(value: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]: Exclude<T[K], undefined>;
  };
}
