/**
 * `npm run demo`, against a running `npm start` with the emulator: creates an order, pays it
 * through the emulator, asks for a confirm, and long-polls until the order is credited; then spends
 * part of that credit: a hold, a partial capture of it (the rest is available again) and a debit,
 * with the balance after each step. It calls the API as the merchant's backend, with the service
 * key `npm start` made (or ORDERS_API_KEY).
 */
import { randomUUID } from 'node:crypto';
import { EMULATOR_API_BASE, parseCommandLine } from '@ledger/shared';
import { demoOrdersKey } from './dev-orders-key.js';

parseCommandLine('demo', {
  usage: 'npm run demo',
  summary:
    'Against a running `npm start` (with the emulator): creates an order, pays it through the emulator, confirms it and long-polls until it is credited, then holds, captures part of the hold and debits some of the credit, printing each step and the balance after it.',
  environment: [
    'DEMO_RECEIVER_URL (default http://127.0.0.1:$PORT)',
    'PORT',
    'STRIPE_API_BASE (the emulator)',
    'ORDERS_API_KEY (default: the first of ORDERS_API_KEYS, else the key npm start made)',
    'ADMIN_TOKEN (also show the account and its ledger entries)',
  ],
  exitCodes: [
    [0, 'the order was credited and part of it spent'],
    [1, 'the receiver or the emulator did not answer, the order was not credited within 20 s, or a spending call was refused'],
    [64, 'unknown option'],
  ],
});

const receiver = process.env.DEMO_RECEIVER_URL || `http://127.0.0.1:${process.env.PORT || '3000'}`;
const emulator = process.env.STRIPE_API_BASE || EMULATOR_API_BASE;
const apiKey = demoOrdersKey(process.env);
const asService = { authorization: `Bearer ${apiKey}` };

/** Fails with one line when `url` does not answer within 3 s, saying what to start. */
async function reachable(what: string, url: string, hint: string): Promise<void> {
  const answered = await fetch(url, { signal: AbortSignal.timeout(3_000) }).then(
    () => true,
    () => false,
  );
  if (!answered) throw new Error(`the ${what} does not answer at ${new URL(url).origin}: ${hint}`);
}

async function call(method: string, url: string, body?: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(url, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const json = text ? JSON.parse(text) : undefined;
  if (!response.ok) throw new Error(`${method} ${url} answered ${response.status}: ${text}`);
  return json;
}

const step = (n: number, text: string) => console.log(`\n${n}. ${text}`);

interface Figures {
  balance: number;
  held: number;
  available: number;
  currency: string;
}
/** GET /accounts/:id/balance, printed as one line. */
async function showBalance(accountId: string): Promise<Figures> {
  const figures: Figures = await call('GET', `${receiver}/accounts/${accountId}/balance`, undefined, asService);
  console.log(`   balance ${figures.balance} ${figures.currency}, held ${figures.held}, available ${figures.available}`);
  return figures;
}

try {
  await reachable('receiver', `${receiver}/healthz`, 'is `npm start` running? (PORT or DEMO_RECEIVER_URL point the demo elsewhere)');
  await reachable(
    'Stripe emulator',
    `${emulator}/_emulator/config`,
    'the demo pays through the emulator, which `npm start` runs when STRIPE_SECRET_KEY is unset',
  );
  if (!apiKey) throw new Error('no orders API key: run `npm start` first (it makes one in .dev/orders-api-key) or set ORDERS_API_KEY');
  const accountId = `demo_${randomUUID().slice(0, 8)}`;
  step(1, `POST ${receiver}/orders — a 25.00 USD top-up for account ${accountId}`);
  const order = await call(
    'POST',
    `${receiver}/orders`,
    { accountId, amount: 2500, currency: 'usd' },
    { ...asService, 'Idempotency-Key': randomUUID() },
  );
  console.log(`   order ${order.id}: ${order.status}, PaymentIntent ${order.paymentIntentId}`);

  step(2, `the customer pays: emulator marks ${order.paymentIntentId} succeeded and sends signed webhooks`);
  await call('POST', `${emulator}/_emulator/payment_intents/${order.paymentIntentId}/succeed`, {});
  console.log('   payment_intent.succeeded and charge.succeeded emitted');

  step(3, `POST ${receiver}/orders/${order.id}/confirm — the client says it paid (no credit here, a check with Stripe)`);
  const confirmed = await call('POST', `${receiver}/orders/${order.id}/confirm`, undefined, asService);
  console.log(`   202, order ${confirmed.status}`);

  step(4, `GET ${receiver}/orders/${order.id}?wait=10&status=<last seen> until credited (long-poll: answers when the status changes)`);
  const deadline = Date.now() + 20_000;
  let status = confirmed.status as string;
  for (;;) {
    const current = await call('GET', `${receiver}/orders/${order.id}?wait=10&status=${status}`, undefined, asService);
    console.log(`   ${new Date().toISOString()}  ${current.status}`);
    status = current.status;
    if (status === 'credited') break;
    if (Date.now() > deadline) throw new Error('the order was not credited within 20 s: is the worker running?');
  }

  // Spending the credit, as the merchant's backend does: each call is one ledger operation under the
  // account's lock, and its reference makes it safe to retry.
  step(5, `GET ${receiver}/accounts/${accountId}/balance — the credit is there to spend`);
  await showBalance(accountId);

  step(6, `POST ${receiver}/accounts/${accountId}/holds — reserve 10.00 (a service about to be delivered)`);
  const hold = await call(
    'POST',
    `${receiver}/accounts/${accountId}/holds`,
    { amount: 1000, currency: 'usd', reference: `demo-hold-${randomUUID()}`, expiresInSeconds: 600 },
    asService,
  );
  console.log(`   hold ${hold.id}: ${hold.status}, ${hold.amount} until ${hold.expiresAt}`);
  await showBalance(accountId);

  step(7, `POST ${receiver}/holds/${hold.id}/capture — the service cost 6.00: capture that much, the rest is available again`);
  const captured = await call('POST', `${receiver}/holds/${hold.id}/capture`, { amount: 600 }, asService);
  console.log(`   hold ${captured.id}: ${captured.status}, ${captured.capturedAmount} captured`);
  await showBalance(accountId);

  step(8, `POST ${receiver}/accounts/${accountId}/debits — spend 3.00 at once`);
  const debitReference = `demo-debit-${randomUUID()}`;
  const debit = await call(
    'POST',
    `${receiver}/accounts/${accountId}/debits`,
    { amount: 300, currency: 'usd', reference: debitReference, description: 'demo purchase' },
    asService,
  );
  console.log(`   debit ${debit.id}: ${debit.status}, ${debit.amount}`);
  // The same reference again (a retry after a lost answer): the same debit, nothing moves twice.
  const retried = await call(
    'POST',
    `${receiver}/accounts/${accountId}/debits`,
    { amount: 300, currency: 'usd', reference: debitReference, description: 'demo purchase' },
    asService,
  );
  console.log(`   the same reference again: debit ${retried.id}, nothing moved twice`);
  const spent = await showBalance(accountId);
  if (spent.balance !== 2500 - 600 - 300 || spent.available !== spent.balance) {
    throw new Error(`the account should hold ${2500 - 600 - 300} after spending, with nothing held; it holds ${JSON.stringify(spent)}`);
  }
  if (process.env.ADMIN_TOKEN) {
    const auth = { authorization: `Bearer ${process.env.ADMIN_TOKEN}` };
    const account = await call('GET', `${receiver}/accounts/${accountId}`, undefined, auth);
    const ledger: { type: string; amount: number; reference: string }[] = await call(
      'GET',
      `${receiver}/accounts/${accountId}/ledger`,
      undefined,
      auth,
    );
    step(9, `GET ${receiver}/accounts/${accountId}: balance ${account.balance} ${account.currency}`);
    for (const entry of ledger) console.log(`   ledger: ${entry.type} ${entry.amount} ${entry.reference}`);
    const credits = ledger.filter((entry) => entry.reference === order.paymentIntentId).length;
    console.log(`\nthe webhook and the confirm both reached the ledger; it holds ${credits} credit for ${order.paymentIntentId}.`);
  } else {
    console.log('\n(set ADMIN_TOKEN for npm start and the demo to see the ledger entries)');
  }
} catch (error) {
  console.error(`\ndemo failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
