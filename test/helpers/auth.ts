import { SignJWT, type JWTPayload } from 'jose';
import type { OrdersAuthConfig } from '../../apps/webhook-receiver/src/orders-auth.js';

/** Service keys of the test receivers: the current one and the one being rotated out. */
export const ORDERS_API_KEYS = ['test-orders-key-current-0123456789', 'test-orders-key-previous-0123456789'];
export const JWT_SECRET = 'test-jwt-secret-of-at-least-32-characters';
export const JWT_ISSUER = 'https://auth.test.example';
export const JWT_AUDIENCE = 'ledger-orders';

/** The test receivers' orders credentials: both service keys and HS256 JWTs with issuer and audience. */
export const TEST_ORDERS_AUTH: OrdersAuthConfig = {
  apiKeys: ORDERS_API_KEYS,
  jwt: {
    key: new TextEncoder().encode(JWT_SECRET),
    algorithms: ['HS256'],
    issuer: JWT_ISSUER,
    audience: [JWT_AUDIENCE],
    clockToleranceSeconds: 5,
  },
};

/** `Authorization` of the merchant's backend (a service key). */
export function serviceAuth(key = ORDERS_API_KEYS[0]!): { authorization: string } {
  return { authorization: `Bearer ${key}` };
}

/**
 * A user's JWT for `accountId`, valid for the test receivers unless `claims` / `options` say
 * otherwise (times in seconds from now; `undefined` leaves a claim out).
 */
export async function userToken(
  accountId: string | undefined,
  claims: JWTPayload = {},
  options: { secret?: string; expiresIn?: number | undefined; notBefore?: number } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const token = new SignJWT({ iss: JWT_ISSUER, aud: JWT_AUDIENCE, ...claims })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuedAt(now);
  if (accountId !== undefined) token.setSubject(accountId);
  const expiresIn = 'expiresIn' in options ? options.expiresIn : 300;
  if (expiresIn !== undefined) token.setExpirationTime(now + expiresIn);
  if (options.notBefore !== undefined) token.setNotBefore(now + options.notBefore);
  return token.sign(new TextEncoder().encode(options.secret ?? JWT_SECRET));
}

/** `Authorization` of an end user acting for `accountId`. */
export async function userAuth(accountId: string): Promise<{ authorization: string }> {
  return { authorization: `Bearer ${await userToken(accountId)}` };
}
