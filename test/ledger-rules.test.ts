import { ENTRY_SIGN, post, signedAmount } from '@ledger/ledger';
import { postgresErrorOf, withTransaction, type LedgerEntryType } from '@ledger/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { balanceDrift, createTestDatabase, type TestDatabase } from './helpers/database.js';
import { createOrderFixture, type OrderFixture } from './helpers/fixtures.js';

// The ledger's shape is PostgreSQL's, not only the code's: the sign per entry type (a CHECK) and
// append-only entries (a trigger). Plain SQL is used on purpose: whoever writes, the database refuses.
let db: TestDatabase;
let order: OrderFixture;
beforeAll(async () => {
  db = await createTestDatabase();
  order = await createOrderFixture(db.prisma, { amount: 500 });
});
afterAll(async () => {
  await db?.drop();
});

const TYPES = Object.keys(ENTRY_SIGN) as LedgerEntryType[];
let counter = 0;

/** Inserts one entry by hand; the PostgreSQL error code and constraint if it was refused. */
async function insertRaw(type: LedgerEntryType, amount: number) {
  try {
    await db.prisma.$executeRaw`
      INSERT INTO ledger_entries (account_id, entry_type, amount, currency, reference, order_id)
      VALUES (${order.accountId}, ${type}::"LedgerEntryType", ${amount}, 'usd', ${`ref_rule_${++counter}`}, NULL)`;
    return 'accepted';
  } catch (error) {
    const refused = postgresErrorOf(error);
    // A CHECK violation names its constraint only in the message (the adapter reports no index).
    const constraint = /constraint \\?"(\w+)\\?"/.exec(error instanceof Error ? error.message : String(error))?.[1];
    return `${refused?.code} ${constraint}`;
  }
}

describe('PostgreSQL holds the ledger sign per entry type', () => {
  it('refuses an entry with the wrong sign, and a zero amount, for every entry type', async () => {
    const outcomes: Record<string, Record<string, string>> = {};
    for (const type of TYPES) {
      outcomes[type] = { positive: await insertRaw(type, 7), negative: await insertRaw(type, -7), zero: await insertRaw(type, 0) };
    }
    const refused = '23514 ledger_entries_sign_per_type';
    expect(outcomes).toEqual({
      topup: { positive: 'accepted', negative: refused, zero: refused },
      refund_reversal: { positive: 'accepted', negative: refused, zero: refused },
      dispute_reversal: { positive: 'accepted', negative: refused, zero: refused },
      refund: { positive: refused, negative: 'accepted', zero: refused },
      dispute: { positive: refused, negative: 'accepted', zero: refused },
      adjustment: { positive: 'accepted', negative: 'accepted', zero: refused },
      debit: { positive: refused, negative: 'accepted', zero: refused },
      hold_capture: { positive: refused, negative: 'accepted', zero: refused },
    });
    // The accepted rows moved no balance (plain SQL); leave the invariant as the other tests expect.
    await db.prisma
      .$executeRaw`UPDATE accounts SET balance = (SELECT SUM(amount) FROM ledger_entries WHERE account_id = ${order.accountId}) WHERE id = ${order.accountId}`;
    expect(await balanceDrift(db.prisma)).toEqual([]);
  });

  it('post() signs by the type and refuses a signed magnitude before PostgreSQL sees it', async () => {
    expect(signedAmount('topup', 300)).toBe(300);
    expect(signedAmount('refund', 300)).toBe(-300);
    expect(signedAmount('dispute', 300)).toBe(-300);
    expect(signedAmount('adjustment', -300)).toBe(-300);
    expect(() => signedAmount('refund', -300)).toThrow(/positive integer amount/);
    expect(() => signedAmount('topup', 1.5)).toThrow(RangeError);
    expect(() => signedAmount('adjustment', 0)).toThrow(/nonzero/);

    const before = Number((await db.prisma.account.findUniqueOrThrow({ where: { id: order.accountId } })).balance);
    const posting = { accountId: order.accountId, currency: 'usd', orderId: null, eventId: null };
    const posted = await withTransaction(db.prisma, (tx) =>
      post(tx, { ...posting, type: 'refund', reference: 're_rule_post', amount: 120 }),
    );
    const again = await withTransaction(db.prisma, (tx) =>
      post(tx, { ...posting, type: 'refund', reference: 're_rule_post', amount: 120 }),
    );
    expect([posted, again]).toEqual([true, false]);
    const [entry] = await db.prisma.$queryRaw<{ amount: number }[]>`SELECT amount FROM ledger_entries WHERE reference = 're_rule_post'`;
    expect(entry?.amount).toBe(-120);
    const after = Number((await db.prisma.account.findUniqueOrThrow({ where: { id: order.accountId } })).balance);
    expect(after - before).toBe(-120);
    expect(await balanceDrift(db.prisma)).toEqual([]);
  });
});

describe('PostgreSQL keeps the ledger append-only', () => {
  it('refuses any UPDATE, DELETE or TRUNCATE of posted entries, and the rows stay as they were', async () => {
    const rowsBefore = await db.prisma.$queryRaw<unknown[]>`SELECT * FROM ledger_entries ORDER BY id`;
    expect(rowsBefore.length).toBeGreaterThan(0);
    const attempts = {
      update: `UPDATE ledger_entries SET amount = amount + 1`,
      updateOne: `UPDATE ledger_entries SET reference = 'rewritten' WHERE id = (SELECT MIN(id) FROM ledger_entries)`,
      delete: `DELETE FROM ledger_entries WHERE entry_type = 'topup'`,
      truncate: `TRUNCATE ledger_entries`,
    };
    for (const [name, statement] of Object.entries(attempts)) {
      const error = await db.prisma.$executeRawUnsafe(statement).then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect(error, name).toBeDefined();
      expect(postgresErrorOf(error)?.code, name).toBe('23001');
      expect(String((error as Error).message), name).toContain('append-only');
    }
    expect(await db.prisma.$queryRaw<unknown[]>`SELECT * FROM ledger_entries ORDER BY id`).toEqual(rowsBefore);
  });
});

describe('withTransaction', () => {
  it('runs a transaction PostgreSQL aborted for a real deadlock again, and both commit', async () => {
    const first = await createOrderFixture(db.prisma);
    const second = await createOrderFixture(db.prisma);
    let runs = 0;
    const deferred = () => {
      let resolve = () => {};
      const promise = new Promise<void>((done) => {
        resolve = done;
      });
      return { promise, resolve };
    };
    const locked = [deferred(), deferred()] as const;
    const crossing = (mine: 0 | 1, one: string, other: string) =>
      withTransaction(db.prisma, async (tx) => {
        runs += 1;
        await tx.$executeRaw`UPDATE accounts SET updated_at = now() WHERE id = ${one}`;
        locked[mine].resolve();
        await locked[mine === 0 ? 1 : 0].promise;
        // Each holds the row the other wants next: PostgreSQL aborts one of them (40P01).
        await tx.$executeRaw`UPDATE accounts SET updated_at = now() WHERE id = ${other}`;
        return mine;
      });
    const results = await Promise.all([crossing(0, first.accountId, second.accountId), crossing(1, second.accountId, first.accountId)]);
    expect(results).toEqual([0, 1]);
    expect(runs).toBe(3);
  });

  it('runs a transaction again after a serialization failure (40001), and gives up after its attempts', async () => {
    let runs = 0;
    const result = await withTransaction(db.prisma, async (tx) => {
      runs += 1;
      if (runs === 1) await tx.$executeRawUnsafe(`DO $$ BEGIN RAISE EXCEPTION 'serialization failure' USING ERRCODE = '40001'; END $$`);
      return runs;
    });
    expect(result).toBe(2);

    let failing = 0;
    const error = await withTransaction(
      db.prisma,
      async (tx) => {
        failing += 1;
        await tx.$executeRawUnsafe(`DO $$ BEGIN RAISE EXCEPTION 'serialization failure' USING ERRCODE = '40001'; END $$`);
      },
      { attempts: 2 },
    ).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(postgresErrorOf(error)?.code).toBe('40001');
    expect(failing).toBe(2);
  });
});

describe('PostgreSQL keeps holds moving forward only', () => {
  it('refuses reopening, rewriting or deleting a hold, a capture above the hold, and a finished hold changing again', async () => {
    const insertHold = (id: string) => db.prisma.$executeRaw`
      INSERT INTO holds (id, account_id, currency, amount, reference, expires_at)
      VALUES (${id}, ${order.accountId}, 'usd', 100, ${id}, now() + interval '1 hour')`;
    await insertHold('hold_rule_a');
    await insertHold('hold_rule_b');
    const refusal = (statement: string) =>
      db.prisma.$executeRawUnsafe(statement).then(
        () => 'accepted',
        (error: unknown) => postgresErrorOf(error)?.code,
      );
    expect({
      moreThanHeld: await refusal(`UPDATE holds SET status = 'captured', captured_amount = 101 WHERE id = 'hold_rule_a'`),
      capturedNothing: await refusal(`UPDATE holds SET status = 'captured', captured_amount = 0 WHERE id = 'hold_rule_a'`),
      longer: await refusal(`UPDATE holds SET expires_at = expires_at + interval '1 day' WHERE id = 'hold_rule_a'`),
      bigger: await refusal(`UPDATE holds SET amount = 200 WHERE id = 'hold_rule_a'`),
      delete: await refusal(`DELETE FROM holds WHERE id = 'hold_rule_a'`),
      release: await refusal(`UPDATE holds SET status = 'released' WHERE id = 'hold_rule_a'`),
      reopen: await refusal(`UPDATE holds SET status = 'active' WHERE id = 'hold_rule_a'`),
      captureReleased: await refusal(`UPDATE holds SET status = 'captured', captured_amount = 50 WHERE id = 'hold_rule_a'`),
      capture: await refusal(`UPDATE holds SET status = 'captured', captured_amount = 50 WHERE id = 'hold_rule_b'`),
      recapture: await refusal(`UPDATE holds SET captured_amount = 60 WHERE id = 'hold_rule_b'`),
    }).toEqual({
      moreThanHeld: '23514',
      capturedNothing: '23514',
      longer: '23001',
      bigger: '23001',
      delete: '23001',
      release: 'accepted',
      reopen: '23001',
      captureReleased: '23001',
      capture: 'accepted',
      recapture: '23001',
    });
  });
});
