import { randomInt } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Random base-62 characters, the alphabet Stripe uses after an id's prefix. */
export function randomToken(length: number): string {
  let token = '';
  for (let i = 0; i < length; i += 1) token += ALPHABET[randomInt(ALPHABET.length)];
  return token;
}

/**
 * A Stripe-looking id such as `pi_3QxY…`. Ids come from the crypto RNG, never from the seeded
 * chaos RNG: the system keeps event and payment ids forever (dedupe, ledger references), so an
 * emulator restarted with the same seed must not hand out the same ids again.
 */
export function newId(prefix: string, length = 24): string {
  return `${prefix}_${randomToken(length)}`;
}
