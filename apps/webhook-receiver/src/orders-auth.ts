import { createHash, timingSafeEqual, type KeyObject } from 'node:crypto';
import { ACCOUNT_ID } from '@ledger/shared';
import { errors, jwtVerify, type JWSAlgorithm, type JWTVerifyGetKey } from 'jose';

/** Who calls the orders API: the merchant's backend (any account) or an end user (one account). */
export type OrdersCaller = { kind: 'service' } | { kind: 'user'; accountId: string };

/** How end users' JWTs are verified; never with a key fetched over the network. */
export interface JwtVerification {
  /** HS256 secret, a PEM public key, or a local JWKS. */
  key: Uint8Array | KeyObject | JWTVerifyGetKey;
  /** The only algorithms accepted: a token naming another (`none`, HS256 against a public key) fails. */
  algorithms: JWSAlgorithm[];
  issuer?: string;
  audience?: string[];
  clockToleranceSeconds: number;
}

/** Credentials of the orders API. Both empty: every request is refused (development without setup). */
export interface OrdersAuthConfig {
  /** Service keys, several during a rotation. */
  apiKeys: string[];
  jwt?: JwtVerification;
}

export type AuthOutcome = { caller: OrdersCaller } | { failure: 'missing' | 'invalid' | 'not_configured'; message: string };

/** `Bearer <b64token>` (RFC 6750 §2.1), one space, nothing else. */
const BEARER = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/i;
const MAX_TOKEN_LENGTH = 8_192;

const sha256 = (value: string) => createHash('sha256').update(value).digest();

/** What each of jose's error codes means to the caller; anything else is "not valid". */
const JWT_FAILURES: Record<string, string> = {
  [errors.JOSEAlgNotAllowed.code]: "The token's algorithm is not accepted.",
  [errors.JOSENotSupported.code]: "The token's algorithm is not accepted.",
  [errors.JWSSignatureVerificationFailed.code]: "The token's signature does not verify.",
  [errors.JWKSNoMatchingKey.code]: 'No configured key matches the token.',
  [errors.JWSInvalid.code]: 'The token is malformed.',
  [errors.JWTInvalid.code]: 'The token is malformed.',
};

function claimFailure(error: InstanceType<typeof errors.JWTClaimValidationFailed>): string {
  switch (error.claim) {
    case 'nbf':
      return 'The token is not valid yet.';
    case 'iss':
      return "The token's issuer is not accepted.";
    case 'aud':
      return "The token's audience is not accepted.";
    default:
      return `The token's ${error.claim} claim is missing or invalid.`;
  }
}

/**
 * Builds the check of an `Authorization` header. Service keys are compared in constant time: both
 * sides are hashed first (equal lengths, so the length of a key does not leak either) and every
 * configured key is compared, matched or not. Anything that is not a service key is verified as a
 * JWT; its `sub` is the account id.
 */
export function createOrdersAuthenticator(config: OrdersAuthConfig): (authorization: string | undefined) => Promise<AuthOutcome> {
  const keyHashes = config.apiKeys.map(sha256);
  const jwt = config.jwt;

  const isServiceKey = (token: string) => {
    const given = sha256(token);
    let matched = false;
    for (const expected of keyHashes) matched = timingSafeEqual(given, expected) || matched;
    return matched;
  };

  return async function authenticate(authorization) {
    if (keyHashes.length === 0 && !jwt) {
      return {
        failure: 'not_configured',
        message:
          'The orders API has no credentials configured: set ORDERS_API_KEYS or ORDERS_JWT_* (npm start generates a development key).',
      };
    }
    if (authorization === undefined || authorization === '') {
      return { failure: 'missing', message: 'Send Authorization: Bearer <token or API key>.' };
    }
    const token = authorization.length <= MAX_TOKEN_LENGTH ? BEARER.exec(authorization)?.[1] : undefined;
    if (!token) return { failure: 'invalid', message: 'The Authorization header must be "Bearer <token or API key>".' };
    if (isServiceKey(token)) return { caller: { kind: 'service' } };
    if (!jwt) return { failure: 'invalid', message: 'The credentials are not valid.' };
    try {
      const { payload } = await jwtVerify(token, jwt.key, {
        algorithms: jwt.algorithms,
        issuer: jwt.issuer,
        audience: jwt.audience,
        clockTolerance: jwt.clockToleranceSeconds,
        requiredClaims: ['sub', 'exp'],
      });
      if (typeof payload.sub !== 'string' || !ACCOUNT_ID.test(payload.sub)) {
        return { failure: 'invalid', message: "The token's sub claim is not an account id." };
      }
      return { caller: { kind: 'user', accountId: payload.sub } };
    } catch (error) {
      // JWTExpired is a JWTClaimValidationFailed too: ask for it first.
      if (error instanceof errors.JWTExpired) return { failure: 'invalid', message: 'The token has expired.' };
      if (error instanceof errors.JWTClaimValidationFailed) return { failure: 'invalid', message: claimFailure(error) };
      const code = error instanceof errors.JOSEError ? error.code : '';
      return { failure: 'invalid', message: JWT_FAILURES[code] ?? 'The credentials are not valid.' };
    }
  };
}
