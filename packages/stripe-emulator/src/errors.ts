/** The `type` of a Stripe API error (https://docs.stripe.com/api/errors). */
export type StripeErrorType = 'invalid_request_error' | 'idempotency_error' | 'api_error';

/** The object Stripe puts under `error` in every failed response. */
export interface StripeErrorObject {
  type: StripeErrorType;
  message: string;
  code?: string;
  param?: string;
  doc_url?: string;
}

/**
 * An error answered in Stripe's shape, `{"error":{"type","message","code"?,"param"?}}`, with the
 * status Stripe uses. The stripe SDK picks its error class from the status and `type`
 * (400 + `idempotency_error` becomes `StripeIdempotencyError`), so both must match Stripe's.
 */
export class StripeApiError extends Error {
  override name = 'StripeApiError';

  constructor(
    readonly statusCode: number,
    readonly error: StripeErrorObject,
  ) {
    super(error.message);
  }

  /** The response body. */
  toResponse(): { error: StripeErrorObject } {
    return { error: this.error };
  }
}

/** A 400 `invalid_request_error`; `code` also links Stripe's page for it, as Stripe does. */
export function invalidRequest(message: string, details: { param?: string; code?: string } = {}): StripeApiError {
  const error: StripeErrorObject = { type: 'invalid_request_error', message };
  if (details.code) {
    error.code = details.code;
    error.doc_url = `https://stripe.com/docs/error-codes/${details.code.replaceAll('_', '-')}`;
  }
  if (details.param) error.param = details.param;
  return new StripeApiError(400, error);
}

/** Stripe's 404 for an unknown id: `No such payment_intent: 'pi_…'`. */
export function resourceMissing(objectName: string, id: string, param = 'id'): StripeApiError {
  const error = invalidRequest(`No such ${objectName}: '${id}'`, { code: 'resource_missing', param }).error;
  return new StripeApiError(404, error);
}
