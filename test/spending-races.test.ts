import { randomUUID } from 'node:crypto';
import { startChild, waitUntil, withPgClient, type RunningProcess } from '@ledger/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ORDERS_API_KEYS } from './helpers/auth.js';
import { TEST_REDIS_URL } from './helpers/env.js';
import { useLedgerDatabase } from './helpers/ledger.js';
import { WEBHOOK_SECRETS } from './helpers/receiver.js';
import { deleteKeysWithPrefix, uniquePrefix } from './helpers/redis.js';

// Spending raced by real processes: two receiver processes on one database, clients hitting both
// at once, a receiver killed in the middle of a debit, and the worker's scheduled expiry sweep.
// PostgreSQL decides every race (the account's row lock in each spending function); the balance
// and the audit are checked after every test (useLedgerDatabase).

const ledger = useLedgerDatabase();
const prefix = uniquePrefix();
const processes: RunningProcess[] = [];
let receivers: string[] = [];

function start(script: string, env: Record<string, string>): RunningProcess {
  const running = startChild({
    script,
    env: {
      LOG_LEVEL: 'info',
      DATABASE_URL: ledger.url(),
      REDIS_URL: TEST_REDIS_URL,
      QUEUE_PREFIX: prefix,
      STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRETS.join(','),
      ORDERS_API_KEYS: ORDERS_API_KEYS.join(','),
      SPENDING_RATE_LIMIT_ACCOUNT: '100000',
      RECONCILE_INTERVAL_SECONDS: '0',
      ...env,
    },
  });
  processes.push(running);
  return running;
}

async function startReceiver(): Promise<{ process: RunningProcess; url: string }> {
  const receiver = start('apps/webhook-receiver/src/server.ts', { PORT: '0' });
  const line = await receiver.waitFor(/webhook receiver listening on /, 60_000);
  const port = /listening on http:\/\/[^:]+:(\d+)/.exec(line)?.[1];
  if (!port) throw new Error(`no port in: ${line}`);
  return { process: receiver, url: `http://127.0.0.1:${port}` };
}

beforeAll(async () => {
  receivers = (await Promise.all([startReceiver(), startReceiver()])).map((receiver) => receiver.url);
}, 90_000);
afterEach(async () => {
  // Processes a test started beyond the two shared receivers.
  await Promise.all(processes.splice(2).map((running) => running.stop('SIGKILL')));
});
afterAll(async () => {
  await Promise.all(processes.splice(0).map((running) => running.stop('SIGTERM')));
  await deleteKeysWithPrefix(prefix);
});

const headers = { authorization: `Bearer ${ORDERS_API_KEYS[0]}`, 'content-type': 'application/json' };

async function call(base: string, path: string, body?: object): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${base}${path}`, { method: 'POST', headers, body: JSON.stringify(body ?? {}) });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

const fundedAccount = async (amount: number) => (await ledger.fundedAccount(amount)).accountId;

const debitsOf = (accountId: string) =>
  ledger.prisma().ledgerEntry.findMany({ where: { accountId, entryType: { in: ['debit', 'hold_capture'] } } });

describe('racing processes', () => {
  it('debits and holds racing over two receivers for a balance that fits k of them: exactly k succeed, none below zero', async () => {
    const accountId = await fundedAccount(1_000);
    // 40 operations of 100 against 1,000: 20 debits and 20 holds, alternating receivers, all at once.
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        call(receivers[i % 2]!, `/accounts/${accountId}/${i % 4 < 2 ? 'debits' : 'holds'}`, {
          amount: 100,
          currency: 'usd',
          reference: `race-${i}`,
        }),
      ),
    );
    const statuses = answers.map((answer) => answer.status);
    expect(statuses.filter((status) => status === 201)).toHaveLength(10);
    expect(statuses.filter((status) => status === 422)).toHaveLength(30);
    const debited = answers.filter((answer, i) => answer.status === 201 && i % 4 < 2).length;
    expect(await debitsOf(accountId)).toHaveLength(debited);
    expect(await ledger.balanceOf(accountId)).toBe(1_000 - 100 * debited);
    const balance = (await (await fetch(`${receivers[0]}/accounts/${accountId}/balance`, { headers })).json()) as Record<string, number>;
    expect(balance).toMatchObject({ balance: 1_000 - 100 * debited, held: 100 * (10 - debited), available: 0 });
  });

  it('50 concurrent calls with one reference over two receivers: one debit, every answer the same debit', async () => {
    const accountId = await fundedAccount(1_000);
    const reference = `once-${randomUUID()}`;
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        call(receivers[i % 2]!, `/accounts/${accountId}/debits`, { amount: 70, currency: 'usd', reference }),
      ),
    );
    expect(answers.filter((answer) => answer.status === 201)).toHaveLength(1);
    expect(answers.filter((answer) => answer.status === 200)).toHaveLength(49);
    expect(new Set(answers.map((answer) => answer.body.id)).size).toBe(1);
    expect(await debitsOf(accountId)).toHaveLength(1);
    expect(await ledger.balanceOf(accountId)).toBe(930);
  });

  it('a receiver killed mid-debit, the client retrying elsewhere while the first is still running: one debit', async () => {
    const accountId = await fundedAccount(500);
    const reference = `killed-${randomUUID()}`;
    const doomed = await startReceiver();
    // One request first, so that this receiver has its connections open when it is killed mid-debit.
    expect((await call(doomed.url, `/accounts/nobody-${reference}/debits`, { amount: 1, currency: 'usd', reference })).status).toBe(404);
    await withPgClient(ledger.url(), async (locker) => {
      // Another transaction holds the account's row: the debit waits inside PostgreSQL.
      await locker.query('BEGIN');
      await locker.query('SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE', [accountId]);
      const first = call(doomed.url, `/accounts/${accountId}/debits`, { amount: 200, currency: 'usd', reference }).catch(
        (error: Error) => error,
      );
      await waitUntil(
        async () => {
          const { rows } = await locker.query(
            `SELECT count(*)::int AS waiting FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%ledger_debit%'`,
          );
          return rows[0].waiting >= 1;
        },
        10_000,
        'the first debit to wait for the account lock',
      );
      // The client times out and retries on another receiver while the first request still runs...
      const retry = call(receivers[0]!, `/accounts/${accountId}/debits`, { amount: 200, currency: 'usd', reference });
      // ...and the first receiver dies mid-request.
      expect(await doomed.process.stop('SIGKILL')).toBe('SIGKILL');
      expect(await first).toBeInstanceOf(Error);
      await locker.query('COMMIT');
      const answer = await retry;
      expect([200, 201]).toContain(answer.status);
      expect(answer.body).toMatchObject({ reference, amount: 200, status: 'posted' });
      // Once more, after everything settled: the same debit.
      const again = await call(receivers[1]!, `/accounts/${accountId}/debits`, { amount: 200, currency: 'usd', reference });
      expect(again.status).toBe(200);
      expect(again.body.id).toBe(answer.body.id);
    });
    expect(await debitsOf(accountId)).toHaveLength(1);
    expect(await ledger.balanceOf(accountId)).toBe(300);
  });
});

describe('the hold expiry sweep', () => {
  it("a worker process's scheduled job records expired holds; they stopped counting at expiresAt already", async () => {
    const accountId = await fundedAccount(1_000);
    const placed = await call(receivers[0]!, `/accounts/${accountId}/holds`, {
      amount: 400,
      currency: 'usd',
      reference: `sweep-${randomUUID()}`,
      expiresInSeconds: 1,
    });
    expect(placed.status).toBe(201);
    const holdId = String(placed.body.id);
    const worker = start('apps/order-worker/src/main.ts', { HOLD_EXPIRY_INTERVAL_SECONDS: '1', WORKER_CONCURRENCY: '1' });
    await worker.waitFor(/order worker started/, 60_000);
    await waitUntil(
      async () => (await ledger.prisma().hold.findUniqueOrThrow({ where: { id: holdId } })).status === 'expired',
      20_000,
      'the sweep to record the hold as expired',
    );
    const read = (await (await fetch(`${receivers[1]}/holds/${holdId}`, { headers })).json()) as Record<string, unknown>;
    expect(read).toMatchObject({ status: 'expired', capturedAmount: 0, available: 1_000 });
    expect(await debitsOf(accountId)).toHaveLength(0);
  });
});
