import { createStripeClient } from '@ledger/shared';
import { describe, expect, it } from 'vitest';
import { signedTimestamp, verifyStripeSignature } from '../../apps/webhook-receiver/src/stripe-signature.js';

// Pure: the SDK's own signer and verifier, no server.
const stripe = createStripeClient('sk_test_signature', 'http://127.0.0.1:9');
const verifier = stripe.webhooks.signature!;
const secrets = ['whsec_current', 'whsec_previous'];
const payload = JSON.stringify({ id: 'evt_sig', object: 'event' });
const raw = Buffer.from(payload);
const now = 1_800_000_000;
const sign = (timestamp: number, secret = secrets[0]!) => stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp });
const verify = (header: string, at = now) => verifyStripeSignature(verifier, raw, header, secrets, 300, at);

describe('verifyStripeSignature', () => {
  it.each([
    ['a current signature', sign(now), { ok: true, timestamp: now }],
    ['a signature under the previous secret (rotation)', sign(now, secrets[1]), { ok: true, timestamp: now }],
    ['a signature 300 s old, the edge of the tolerance', sign(now - 300), { ok: true, timestamp: now - 300 }],
    ['a signature 301 s old', sign(now - 301), { ok: false, reason: 'timestamp_out_of_tolerance' }],
    ['a signature 301 s in the future', sign(now + 301), { ok: false, reason: 'timestamp_out_of_tolerance' }],
    ['an unknown secret', sign(now, 'whsec_attacker'), { ok: false, reason: 'invalid_signature' }],
    ['an old t= before the signed one', `t=${now - 9_999},${sign(now)}`, { ok: true, timestamp: now }],
    ['a current t= before a future signed one', `t=${now},${sign(now + 3_600)}`, { ok: false, reason: 'timestamp_out_of_tolerance' }],
    ['a header without t=', sign(now).replace(/^t=\d+,/, ''), { ok: false, reason: 'invalid_signature' }],
    ['nonsense', 'nonsense', { ok: false, reason: 'invalid_signature' }],
  ] as const)('%s', (_name, header, expected) => {
    expect(verify(header)).toMatchObject(expected);
  });

  it('names the failure in one readable line', () => {
    const result = verify(sign(now, 'whsec_attacker'));
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.message).not.toContain('\n');
  });
});

describe('signedTimestamp', () => {
  it.each([
    ['t=1,v1=a', 1],
    ['t=1,t=2,v1=a', 2],
    ['v1=a', undefined],
    ['t=,v1=a', undefined],
    [' t=5,v1=a', undefined],
  ] as const)('%s → %s', (header, expected) => {
    expect(signedTimestamp(header)).toBe(expected);
  });
});
