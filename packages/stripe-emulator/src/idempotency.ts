import { StripeApiError } from './errors.js';

/**
 * A response kept for replay. The body is the JSON text, not the object: a replay must show the
 * object as it was then, byte for byte, however it has changed since (a PaymentIntent paid later).
 */
export interface StoredResponse {
  statusCode: number;
  body: string;
}

/** A response to send, and the request it replays, if it is a replay. */
export interface IdempotentResponse extends StoredResponse {
  replayOf: string | undefined;
}

interface IdempotencyRecord {
  endpoint: string;
  fingerprint: string;
  requestId: string;
  response: StoredResponse;
  storedAt: number;
}

/** Stripe forgets a key after 24 hours (https://docs.stripe.com/api/idempotent_requests). */
const KEY_LIFETIME_MS = 24 * 60 * 60 * 1000;

/**
 * Stripe's idempotent requests (https://docs.stripe.com/api/idempotent_requests): the first
 * request with a key runs and its response is kept; the same key with the same endpoint and
 * parameters gets that response again; with anything else, an `idempotency_error`. Keys are
 * scoped per API key.
 */
export class IdempotencyCache {
  // Insertion order is age order, which lets expiry stop at the first live record.
  private readonly records = new Map<string, IdempotencyRecord>();

  /**
   * Answers a request that carries an `Idempotency-Key`. `execute` must be synchronous: the lookup,
   * the execution and the store then happen in one turn of the event loop, so concurrent requests
   * with one key cannot both execute — the later ones find the record and replay it. A request
   * that fails validation throws out of `execute` and is not kept, so it may be retried with the
   * same key, as on Stripe ("results are only saved if an API endpoint started executing").
   */
  run(
    request: { apiKey: string; idempotencyKey: string; endpoint: string; params: unknown; requestId: string },
    execute: () => StoredResponse,
  ): IdempotentResponse {
    const { idempotencyKey } = request;
    if (idempotencyKey.length > 255) {
      throw new StripeApiError(400, {
        type: 'invalid_request_error',
        message: `Invalid Idempotency-Key: the key must be at most 255 characters long, but it has ${idempotencyKey.length}.`,
      });
    }
    this.expire();
    const scopedKey = `${request.apiKey}\u0000${idempotencyKey}`;
    const fingerprint = canonicalJson(request.params);
    const record = this.records.get(scopedKey);
    if (record) {
      if (record.endpoint !== request.endpoint) {
        throw idempotencyError(
          `Keys for idempotent requests can only be used for the same endpoint they were first used for ('${record.endpoint}' vs '${request.endpoint}'). Try using a key other than '${idempotencyKey}' if you meant to execute a different request.`,
        );
      }
      if (record.fingerprint !== fingerprint) {
        throw idempotencyError(
          `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${idempotencyKey}' if you meant to execute a different request.`,
        );
      }
      return { ...record.response, replayOf: record.requestId };
    }
    const response = execute();
    this.records.set(scopedKey, {
      endpoint: request.endpoint,
      fingerprint,
      requestId: request.requestId,
      response,
      storedAt: Date.now(),
    });
    return { ...response, replayOf: undefined };
  }

  private expire(): void {
    const cutoff = Date.now() - KEY_LIFETIME_MS;
    for (const [key, record] of this.records) {
      if (record.storedAt > cutoff) return;
      this.records.delete(key);
    }
  }
}

function idempotencyError(message: string): StripeApiError {
  return new StripeApiError(400, { type: 'idempotency_error', message });
}

/** JSON with object keys sorted, so that parameter order does not make two requests differ. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, nested: unknown) =>
    nested !== null && typeof nested === 'object' && !Array.isArray(nested)
      ? Object.fromEntries(Object.entries(nested).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : nested,
  );
}
