import type { Stripe } from '@ledger/shared';

/** The outcome of checking a Stripe-Signature header against the raw body. */
export type SignatureCheck =
  | { ok: true; timestamp: number }
  | { ok: false; reason: 'invalid_signature' | 'timestamp_out_of_tolerance'; message: string };

/**
 * The signed timestamp exactly as the SDK reads it (`t=` items split on `,` and `=`, the last one
 * wins), so the time we judge is the time the signature was computed over.
 */
export function signedTimestamp(header: string): number | undefined {
  let timestamp: number | undefined;
  for (const item of header.split(',')) {
    const [key, value] = item.split('=');
    if (key === 't') timestamp = value === undefined ? Number.NaN : Number.parseInt(value, 10);
  }
  return timestamp !== undefined && Number.isSafeInteger(timestamp) ? timestamp : undefined;
}

/**
 * Verifies a webhook: the signature over the raw bytes with any of the secrets (rotation), then the
 * signed timestamp within `toleranceSeconds` of `nowSeconds`, in the past or the future. The SDK
 * checks only the signature here (tolerance 0 turns its own time check off), so the two failures
 * are told apart by what failed, not by the wording of an error message.
 * https://docs.stripe.com/webhooks#verify-events
 */
export function verifyStripeSignature(
  verifier: NonNullable<Stripe['webhooks']['signature']>,
  raw: Buffer,
  header: string,
  secrets: readonly string[],
  toleranceSeconds: number,
  nowSeconds: number,
): SignatureCheck {
  let message = 'No signature matches any configured webhook secret.';
  let verified = false;
  for (const secret of secrets) {
    try {
      verifier.verifyHeader(raw, header, secret, 0);
      verified = true;
      break;
    } catch (error) {
      message = error instanceof Error ? (error.message.split('\n')[0]?.trim() ?? message) : message;
    }
  }
  if (!verified) return { ok: false, reason: 'invalid_signature', message };
  const timestamp = signedTimestamp(header);
  if (timestamp === undefined || Math.abs(nowSeconds - timestamp) > toleranceSeconds) {
    return { ok: false, reason: 'timestamp_out_of_tolerance', message: 'The signature timestamp is outside the tolerance window.' };
  }
  return { ok: true, timestamp };
}
