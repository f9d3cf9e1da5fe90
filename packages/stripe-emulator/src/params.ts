import { z } from 'zod';
import { invalidRequest } from './errors.js';

// Form-encoded parameters arrive as strings; these read them the way Stripe does.

/** An integer parameter sent as a string (`amount=1000`). */
export const integerParam = z
  .string()
  .regex(/^-?\d+$/, { error: (issue) => `Invalid integer: ${String(issue.input)}` })
  .transform(Number);

/** A boolean parameter sent as `true`/`false`. */
export const booleanParam = z.enum(['true', 'false'], { error: 'Invalid boolean' }).transform((value) => value === 'true');

/**
 * Stripe's metadata rules (https://docs.stripe.com/metadata): at most 50 keys, keys up to 40
 * characters, values up to 500. An empty value unsets its key; `metadata=` unsets all of them.
 */
export const metadataParam = z
  .union([z.literal('').transform(() => ({})), z.record(z.string().min(1).max(40), z.string().max(500))])
  .refine((metadata) => Object.keys(metadata).length <= 50, 'Metadata can have up to 50 keys.')
  .transform((metadata) => Object.fromEntries(Object.entries(metadata).filter(([, value]) => value !== '')));

/**
 * Validates `params` with `schema`; the first problem becomes a Stripe 400 naming the parameter
 * in bracket notation (`metadata[order_id]`), with Stripe's wording for missing and unknown ones.
 */
export function parseParams<S extends z.ZodType>(schema: S, params: unknown): z.output<S> {
  const result = schema.safeParse(params ?? {}, { error: nameTheParam });
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  if (!issue) throw invalidRequest('Invalid request parameters.');
  if (issue.code === 'unrecognized_keys') {
    const param = formatParam([...issue.path, issue.keys[0] ?? '']);
    throw invalidRequest(`Received unknown parameter: ${param}`, { param, code: 'parameter_unknown' });
  }
  const param = formatParam(issue.path);
  if (issue.code === 'invalid_type' && issue.input === undefined) {
    throw invalidRequest(`Missing required param: ${param}.`, { param, code: 'parameter_missing' });
  }
  throw invalidRequest(issue.message, param ? { param } : {});
}

// Zod's generic messages ("Too small: expected number to be >=1") do not say which parameter they
// are about; messages written in the schemas already do, and take precedence over this map.
const nameTheParam: z.core.$ZodErrorMap = (issue) => {
  const fallback = z.config().localeError?.(issue);
  const message = typeof fallback === 'string' ? fallback : (fallback?.message ?? 'Invalid value');
  const param = formatParam(issue.path ?? []);
  return param ? `Invalid ${param}: ${message}` : message;
};

/** `['metadata', 'order_id']` → `metadata[order_id]`. */
function formatParam(path: ReadonlyArray<PropertyKey>): string {
  const [head, ...rest] = path.map(String);
  return head === undefined ? '' : head + rest.map((segment) => `[${segment}]`).join('');
}
