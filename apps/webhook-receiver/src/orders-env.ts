import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { commaList } from '@ledger/shared';
import { createLocalJWKSet, type JSONWebKeySet, type JWSAlgorithm } from 'jose';
import { z } from 'zod';
import type { OrdersAuthConfig } from './orders-auth.js';
import { DEFAULT_SPENDING_PER_ACCOUNT, type RateLimitSettings } from './plugins/rate-limits.js';

/** Characters of an RFC 6750 bearer token, so a key always fits `Authorization: Bearer <key>`. */
const API_KEY = /^[A-Za-z0-9\-._~+/]{24,512}$/;

function readFile(path: string, ctx: z.RefinementCtx): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: `cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})` });
    return z.NEVER;
  }
}

/** A PEM public key and the one algorithm it verifies (RS256 for RSA, ES256 for P-256). */
function publicKey(pem: string, ctx: z.RefinementCtx): { key: KeyObject; algorithm: JWSAlgorithm } {
  let key: KeyObject;
  try {
    // Environment variables often carry a PEM on one line with literal \n.
    key = createPublicKey(pem.replaceAll('\\n', '\n'));
  } catch {
    ctx.addIssue({ code: 'custom', message: 'is not a PEM public key' });
    return z.NEVER;
  }
  if (key.asymmetricKeyType === 'rsa') return { key, algorithm: 'RS256' };
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return { key, algorithm: 'ES256' };
  ctx.addIssue({ code: 'custom', message: 'must be an RSA (RS256) or P-256 (ES256) public key' });
  return z.NEVER;
}

function localJwks(path: string, ctx: z.RefinementCtx) {
  const text = readFile(path, ctx);
  try {
    const jwks = JSON.parse(text) as JSONWebKeySet;
    if (!Array.isArray(jwks.keys) || jwks.keys.length === 0) throw new Error('no keys');
    return createLocalJWKSet(jwks);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'must hold a JSON Web Key Set ({"keys":[…]})' });
    return z.NEVER;
  }
}

/** `TRUST_PROXY`: Fastify's trustProxy, `true` (any proxy) or the proxies' addresses / CIDRs. */
function trustProxy(value: string): boolean | string[] {
  if (value === 'true' || value === 'false') return value === 'true';
  return value
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);
}

/**
 * Variables of the orders API: who may call it (service keys, end users' JWTs), its rate limits,
 * and the operator switches that go with them. Merged into the receiver's environment schema.
 */
export const ordersEnvShape = {
  /** Service keys for the merchant's backend, comma separated (several during a rotation). */
  ORDERS_API_KEYS: commaList
    .pipe(z.array(z.string().regex(API_KEY, 'must hold keys of 24-512 letters, digits or - . _ ~ + /, comma separated')).min(1))
    .optional(),
  /** HS256 secret of end users' JWTs. */
  ORDERS_JWT_SECRET: z.string().min(32, 'must be at least 32 characters (HS256 wants a 256-bit secret)').optional(),
  /** PEM public key (RS256 or ES256) of end users' JWTs, as text or in a file. */
  ORDERS_JWT_PUBLIC_KEY: z.string().transform(publicKey).optional(),
  ORDERS_JWT_PUBLIC_KEY_FILE: z
    .string()
    .transform((path, ctx) => publicKey(readFile(path, ctx), ctx))
    .optional(),
  /** A local JSON Web Key Set (RS256 / ES256 keys chosen by `kid`); never fetched over the network. */
  ORDERS_JWKS_FILE: z.string().transform(localJwks).optional(),
  ORDERS_JWT_ISSUER: z.string().optional(),
  ORDERS_JWT_AUDIENCE: commaList.pipe(z.array(z.string()).min(1)).optional(),
  ORDERS_JWT_CLOCK_TOLERANCE_SECONDS: z.coerce.number().int().min(0).max(300).default(5),
  ORDERS_RATE_LIMIT_WINDOW_SECONDS: z.coerce.number().int().min(1).max(86_400).default(60),
  ORDERS_RATE_LIMIT_ACCOUNT: z.coerce.number().int().min(1).default(20),
  ORDERS_RATE_LIMIT_IP: z.coerce.number().int().min(1).default(120),
  /** Spending calls per account, route and window (ORDERS_RATE_LIMIT_WINDOW_SECONDS). */
  SPENDING_RATE_LIMIT_ACCOUNT: z.coerce.number().int().min(1).default(DEFAULT_SPENDING_PER_ACCOUNT),
  /** Bull Board's retry / clean / delete actions; read-only unless `true`. */
  BULL_BOARD_WRITE: z
    .enum(['true', 'false'])
    .default('false')
    .transform((value) => value === 'true'),
  TRUST_PROXY: z.string().transform(trustProxy).optional(),
};

type OrdersEnv = z.infer<z.ZodObject<typeof ordersEnvShape>> & { NODE_ENV: string; ADMIN_TOKEN?: string };

const JWT_SOURCES = ['ORDERS_JWT_SECRET', 'ORDERS_JWT_PUBLIC_KEY', 'ORDERS_JWT_PUBLIC_KEY_FILE', 'ORDERS_JWKS_FILE'] as const;

/** Rules across variables; called from the receiver schema's superRefine. */
export function checkOrdersEnv(env: OrdersEnv, ctx: z.RefinementCtx): void {
  const jwtSources = JWT_SOURCES.filter((name) => env[name] !== undefined);
  const [first, second] = jwtSources;
  if (second !== undefined) {
    ctx.addIssue({ code: 'custom', path: [second], message: `cannot be combined with ${first}: set one JWT key source` });
  }
  // An unauthenticated orders API lets anyone create orders for any account.
  if (env.NODE_ENV === 'production' && !env.ORDERS_API_KEYS && jwtSources.length === 0) {
    ctx.addIssue({
      code: 'custom',
      path: ['ORDERS_API_KEYS'],
      message: `(or one of ${JWT_SOURCES.join(', ')}) is required when NODE_ENV=production`,
    });
  }
  // Admin and orders credentials stay separate: the admin token must not also be an orders key.
  if (env.ADMIN_TOKEN && env.ORDERS_API_KEYS?.includes(env.ADMIN_TOKEN)) {
    ctx.addIssue({ code: 'custom', path: ['ORDERS_API_KEYS'], message: 'must not contain ADMIN_TOKEN' });
  }
}

/** The orders API's credentials as the receiver uses them. */
export function ordersAuthFromEnv(env: OrdersEnv): OrdersAuthConfig {
  const claims = {
    issuer: env.ORDERS_JWT_ISSUER,
    audience: env.ORDERS_JWT_AUDIENCE,
    clockToleranceSeconds: env.ORDERS_JWT_CLOCK_TOLERANCE_SECONDS,
  };
  const pem = env.ORDERS_JWT_PUBLIC_KEY ?? env.ORDERS_JWT_PUBLIC_KEY_FILE;
  const jwt = env.ORDERS_JWT_SECRET
    ? { key: new TextEncoder().encode(env.ORDERS_JWT_SECRET), algorithms: ['HS256'] as JWSAlgorithm[], ...claims }
    : pem
      ? { key: pem.key, algorithms: [pem.algorithm], ...claims }
      : env.ORDERS_JWKS_FILE
        ? { key: env.ORDERS_JWKS_FILE, algorithms: ['RS256', 'ES256'] as JWSAlgorithm[], ...claims }
        : undefined;
  return { apiKeys: env.ORDERS_API_KEYS ?? [], jwt };
}

export function rateLimitsFromEnv(env: OrdersEnv): RateLimitSettings {
  return {
    windowSeconds: env.ORDERS_RATE_LIMIT_WINDOW_SECONDS,
    perAccount: env.ORDERS_RATE_LIMIT_ACCOUNT,
    perIp: env.ORDERS_RATE_LIMIT_IP,
    spendingPerAccount: env.SPENDING_RATE_LIMIT_ACCOUNT,
  };
}
