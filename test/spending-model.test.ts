import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { accountBalance, captureHold, debitAccount, expireHolds, placeHold, releaseHold, type SpendingAnswer } from '@ledger/ledger';
import { balanceDrift } from './helpers/database.js';
import { createOrderFixture, events, type OrderFixture } from './helpers/fixtures.js';
import { useLedgerDatabase } from './helpers/ledger.js';

// The money model with spending: random credits, refunds, disputes, debits, holds, captures,
// releases, retries, expiry sweeps and expiries, in random groups, each group run CONCURRENTLY
// (Promise.all) through the real code on real PostgreSQL: the worker's path (`ledger.apply`) for
// Stripe's events, packages/ledger's spending functions for the rest.
//
// A TypeScript model (`step`) says what each operation must answer in a given state. A concurrent
// group has no single expected outcome, so it is checked for SERIALIZABILITY: some order of its
// operations, run through the model one at a time, gives exactly the answers PostgreSQL gave
// (outcome, the debit's or hold's id, the balance after it). The search places a hold's expiry as
// one more step when the hold's expires_at falls inside the group's time window. After every group,
// whatever the order was, the database must equal the model's state (balance, held, every hold's
// status and capture, the debit and capture rows: one per reference, so nothing applied twice) and:
//
// - balance = Σ ledger for every account (balanceDrift);
// - available is never made negative by spending. Two checks that do not trust the model:
//   (1) every debit or hold that was created answers, from under the account's lock, available ≥ 0
//       after it; (2) on the figures read before and after each group, available_end ≥
//       min(available_start, 0) − R, where R is what refunds and disputes took in the group. Sound
//       because in any serial order a created debit or hold leaves available ≥ 0, a capture,
//       release, expiry or credit only raises it, and only a refund or dispute lowers it below what
//       it was (by what it took): a debt comes from Stripe taking money back, never from spending;
// - a reference is applied once: a retry (even racing the original) answers the same id, another
//   body or the other kind of operation under it is reference_conflict, and the ledger has one row.
//
// (An expiry in the past cannot be written — holds_forward_only refuses changing expires_at — so
// expiries are real: a few holds of 1 s and, in a few runs, a wait until they pass.)

const ledger = useLedgerDatabase();
const prisma = () => ledger.prisma();

type Currency = 'usd' | 'eur';
type Command =
  | { kind: 'credit'; amount: number }
  | { kind: 'refund'; order: number; amount: number }
  | { kind: 'dispute'; order: number; amount: number }
  | { kind: 'disputeClosed'; order: number; won: boolean }
  | { kind: 'debit'; ref: number; amount: number; currency: Currency }
  | { kind: 'hold'; ref: number; amount: number; currency: Currency; short: boolean }
  /** An earlier debit, hold, capture or release again (same reference or hold, same body): a client's retry. */
  | { kind: 'retry'; of: number }
  | { kind: 'capture'; hold: number; amount: number | undefined }
  | { kind: 'release'; hold: number }
  | { kind: 'sweep' }
  /** Alone in its group: waits until every short hold so far has expired (at most once a run, and at its end). */
  | { kind: 'wait'; final?: boolean }
  /** A capture and a release of each of the last three holds. */
  | { kind: 'lastHolds' };

/** An operation of a group, its references resolved against the groups before it. */
type Op =
  | { kind: 'money'; label: string; delta: number; expect: string; run: () => Promise<string> }
  | { kind: 'debit'; reference: string; amount: number; currency: Currency }
  | { kind: 'hold'; reference: string; amount: number; currency: Currency; seconds: number }
  | { kind: 'capture'; holdId: string; amount: number | undefined }
  | { kind: 'release'; holdId: string }
  | { kind: 'sweep' }
  /** Not run: the model's step for a hold whose expiry falls inside the group. */
  | { kind: 'expire'; holdId: string };

interface Observed {
  outcome: string;
  id?: string | undefined;
  balance?: number | undefined;
  held?: number | undefined;
  available?: number | undefined;
}

interface ModelHold {
  id: string;
  reference: string;
  amount: number;
  currency: Currency;
  status: 'active' | 'captured' | 'released';
  captured: number;
  expiresAt: number;
  /** Past expiresAt for the operations being modelled. */
  expired: boolean;
}
interface Model {
  balance: number;
  debits: Map<string, { amount: number; currency: Currency; id: string }>;
  holds: Map<string, ModelHold>;
  holdByReference: Map<string, string>;
}

const clone = (model: Model): Model => ({
  balance: model.balance,
  debits: new Map(model.debits),
  holds: new Map([...model.holds].map(([id, hold]) => [id, { ...hold }])),
  holdByReference: new Map(model.holdByReference),
});
const heldIn = (model: Model) =>
  [...model.holds.values()].filter((hold) => hold.status === 'active' && !hold.expired).reduce((sum, hold) => sum + hold.amount, 0);

/**
 * What `op` answers in `model` (which it updates), the rules of ledger_debit, ledger_place_hold,
 * ledger_capture_hold and ledger_release_hold. A created hold takes its id from what the database
 * answered (`observed`): ids are random. `figures` says whether the answer carries the account.
 */
function step(model: Model, op: Op, observed: Observed | undefined): Observed & { figures: boolean } {
  const after = (outcome: string, id?: string) => ({ outcome, id, balance: model.balance, held: heldIn(model), figures: true });
  switch (op.kind) {
    case 'money':
      model.balance += op.delta;
      return { outcome: op.expect, figures: false };
    case 'sweep':
    case 'expire': {
      const hold = op.kind === 'expire' ? model.holds.get(op.holdId) : undefined;
      if (hold) hold.expired = true;
      return { outcome: 'swept', figures: false };
    }
    case 'debit': {
      const existing = model.debits.get(op.reference);
      if (existing) {
        // A conflict answers no debit; a replay answers the first one.
        const replayed = existing.amount === op.amount && existing.currency === op.currency;
        return replayed ? after('replayed', existing.id) : after('reference_conflict');
      }
      const refusal = spendingRefusal(model, op);
      if (refusal) return after(refusal);
      const id = observed?.id ?? '?';
      model.balance -= op.amount;
      model.debits.set(op.reference, { amount: op.amount, currency: op.currency, id });
      return after('created', id);
    }
    case 'hold': {
      const existingId = model.holdByReference.get(op.reference);
      if (existingId) {
        const existing = model.holds.get(existingId)!;
        return after(existing.amount === op.amount && existing.currency === op.currency ? 'replayed' : 'reference_conflict', existingId);
      }
      const refusal = spendingRefusal(model, op);
      if (refusal) return after(refusal);
      const id = observed?.id ?? '?';
      model.holds.set(id, {
        id,
        reference: op.reference,
        amount: op.amount,
        currency: op.currency,
        status: 'active',
        captured: 0,
        expiresAt: Number.POSITIVE_INFINITY,
        expired: false,
      });
      model.holdByReference.set(op.reference, id);
      return after('created', id);
    }
    case 'capture': {
      const hold = model.holds.get(op.holdId);
      if (!hold) return { outcome: 'unknown_hold', figures: false };
      const taken = op.amount ?? hold.amount;
      if (hold.status === 'captured') return after(hold.captured === taken ? 'replayed' : 'hold_not_active', hold.id);
      if (hold.status !== 'active' || hold.expired) return after('hold_not_active', hold.id);
      if (taken > hold.amount) return after('exceeds_hold', hold.id);
      hold.status = 'captured';
      hold.captured = taken;
      model.balance -= taken;
      return after('captured', hold.id);
    }
    case 'release': {
      const hold = model.holds.get(op.holdId);
      if (!hold) return { outcome: 'unknown_hold', figures: false };
      if (hold.status === 'released') return after('replayed', hold.id);
      if (hold.status !== 'active' || hold.expired) return after('hold_not_active', hold.id);
      hold.status = 'released';
      return after('released', hold.id);
    }
  }
}

/** ledger_spending_refusal: the reference taken by the other kind, the currency, available. */
function spendingRefusal(model: Model, op: Extract<Op, { kind: 'debit' | 'hold' }>): string | undefined {
  if (model.holdByReference.has(op.reference) || model.debits.has(op.reference)) return 'reference_conflict';
  if (op.currency !== 'usd') return 'currency_mismatch';
  if (model.balance - heldIn(model) < op.amount) return 'insufficient_funds';
  return undefined;
}

function observedOf<T extends { id: string }>(answer: SpendingAnswer<T>, doneNow: string): Observed {
  if (!answer.ok) return { outcome: answer.refusal, id: answer.hold?.id, ...figures(answer.account) };
  return { outcome: answer.created ? doneNow : 'replayed', id: answer.value.id, ...figures(answer.account) };
}
const figures = (account: { balance: number; held: number; available: number } | undefined) =>
  account ? { balance: account.balance, held: account.held, available: account.available } : {};

async function run(accountId: string, op: Op): Promise<Observed> {
  const db = prisma();
  switch (op.kind) {
    case 'money':
      return { outcome: await op.run() };
    case 'debit':
      return observedOf(await debitAccount(db, { accountId, ...op }), 'created');
    case 'hold':
      return observedOf(await placeHold(db, { accountId, ...op, expiresInSeconds: op.seconds }), 'created');
    case 'capture':
      return observedOf(await captureHold(db, op.holdId, op.amount), 'captured');
    case 'release':
      return observedOf(await releaseHold(db, op.holdId), 'released');
    case 'sweep':
      await expireHolds(db);
      return { outcome: 'swept' };
    case 'expire':
      throw new Error('an expiry is not run');
  }
}

/**
 * An order of `ops` (with `expiries` placed anywhere) whose answers in the model are exactly
 * `observed`, and the model after it; undefined when there is none. When the group releases a hold,
 * an answer's `held` may already miss it (a release takes the hold's lock, not the account's), so
 * `held` may then be below the model's.
 */
function serialize(model: Model, ops: Op[], observed: Observed[], expiries: Op[]): Model | undefined {
  const releases = ops.some((op) => op.kind === 'release');
  const all = [...ops, ...expiries];
  const search = (state: Model, left: number[]): Model | undefined => {
    if (left.length === 0) return state;
    for (const index of left) {
      const next = clone(state);
      const seen = observed[index];
      const predicted = step(next, all[index]!, seen);
      if (seen) {
        if (predicted.outcome !== seen.outcome) continue;
        if (predicted.id !== undefined && predicted.id !== seen.id) continue;
        if (predicted.figures && all[index]!.kind !== 'release') {
          if (seen.balance !== predicted.balance) continue;
          if (releases ? seen.held! > predicted.held! : seen.held !== predicted.held) continue;
        }
      }
      const found = search(
        next,
        left.filter((other) => other !== index),
      );
      if (found) return found;
    }
    return undefined;
  };
  return search(
    model,
    all.map((_, index) => index),
  );
}

/** A run's story: one account, its first credit, then commands cut into groups. */
const moneyAmount = fc.integer({ min: 1, max: 700 });
const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('credit' as const), amount: fc.integer({ min: 1, max: 1_000 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('refund' as const), order: fc.nat(), amount: moneyAmount }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('dispute' as const), order: fc.nat(), amount: moneyAmount }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('disputeClosed' as const), order: fc.nat(), won: fc.boolean() }) },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('debit' as const),
      ref: fc.nat({ max: 7 }),
      amount: moneyAmount,
      currency: fc.constantFrom<Currency>('usd', 'usd', 'usd', 'usd', 'eur'),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('hold' as const),
      ref: fc.nat({ max: 7 }),
      amount: moneyAmount,
      currency: fc.constantFrom<Currency>('usd', 'usd', 'usd', 'usd', 'eur'),
      // In the runs that wait for expiries, one hold in three lasts 1 s.
      short: fc.nat({ max: 2 }).map((n) => n === 0),
    }),
  },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('retry' as const), of: fc.nat() }) },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('capture' as const),
      hold: fc.nat(),
      amount: fc.option(fc.integer({ min: 1, max: 700 }), { nil: undefined }),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('release' as const), hold: fc.nat() }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'sweep' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'wait' as const }) },
);
const story = fc.record({
  firstCredit: fc.integer({ min: 1, max: 1_500 }),
  commands: fc.array(command, { minLength: 6, maxLength: 24 }),
  // One run in twelve (and the first, an example) has holds of 1 s and waits for them: a wait costs a second.
  expiries: fc.nat({ max: 11 }).map((n) => n === 0),
  groupSizes: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 16 }),
});

interface Paid {
  order: OrderFixture;
  /** What refunds and disputes may still take (Stripe never takes back more than was paid). */
  left: number;
  dispute?: { id: string; amount: number; closed: boolean };
}

async function runStory(input: { firstCredit: number; commands: Command[]; groupSizes: number[]; expiries: boolean }) {
  const first = await createOrderFixture(prisma(), { amount: input.firstCredit });
  const accountId = first.accountId;
  const tag = first.id.slice(4, 16);
  expect((await ledger.apply(events.paymentIntent('succeeded', first))).outcomes).toEqual(['applied']);
  let model: Model = { balance: input.firstCredit, debits: new Map(), holds: new Map(), holdByReference: new Map() };
  const paid: Paid[] = [{ order: first, left: input.firstCredit }];
  const spent: Extract<Op, { kind: 'debit' | 'hold' | 'capture' | 'release' }>[] = [];
  let waited = false;
  let refunds = 0;

  // Cut the commands into groups.
  const groups: Command[][] = [];
  for (let at = 0, cut = 0; at < input.commands.length; cut++) {
    const size = input.groupSizes[cut % input.groupSizes.length]!;
    const group = input.commands.slice(at, at + size);
    at += size;
    // A wait is a group of its own.
    for (const part of group.some((c) => c.kind === 'wait') ? group.map((c) => [c]) : [group]) groups.push(part);
  }
  if (input.expiries) {
    // The end of a run with short holds: two more, they expire, then captures, releases, retries and
    // the sweeper race over the holds.
    groups.push(
      [
        { kind: 'hold', ref: 8, amount: 1, currency: 'usd', short: true },
        { kind: 'hold', ref: 9, amount: 2, currency: 'usd', short: true },
      ],
      [{ kind: 'wait', final: true }],
      [{ kind: 'lastHolds' }, { kind: 'sweep' }, { kind: 'retry', of: 0 }],
    );
  }

  for (const [groupIndex, group] of groups.entries()) {
    // Resolve each command against what the groups before this one did.
    const ops: Op[] = [];
    const knownHolds = [...model.holds.keys()];
    const pendingPaid: Paid[] = [];
    let taken = 0;
    for (const c of group) {
      switch (c.kind) {
        case 'credit': {
          const order = await createOrderFixture(prisma(), { accountId, amount: c.amount });
          pendingPaid.push({ order, left: c.amount });
          ops.push(money(`credit ${c.amount}`, c.amount, 'applied', events.paymentIntent('succeeded', order)));
          break;
        }
        case 'refund': {
          const target = paid[c.order % paid.length]!;
          const amount = Math.min(c.amount, target.left);
          if (amount === 0) break;
          target.left -= amount;
          taken += amount;
          const refund = { id: `re_${refunds++}${tag}`, amount };
          ops.push(money(`refund ${amount}`, -amount, 'applied', events.refund('refund.created', target.order, refund)));
          break;
        }
        case 'dispute': {
          const target = paid[c.order % paid.length]!;
          const amount = Math.min(c.amount, target.left);
          if (amount === 0 || target.dispute) break;
          target.left -= amount;
          taken += amount;
          target.dispute = { id: `dp_${refunds++}${tag}`, amount, closed: false };
          const dispute = { id: target.dispute.id, status: 'needs_response', amount };
          ops.push(money(`dispute ${amount}`, -amount, 'applied', events.dispute('created', target.order, dispute)));
          break;
        }
        case 'disputeClosed': {
          const open = paid.filter((p) => p.dispute && !p.dispute.closed);
          const target = open[c.order % Math.max(open.length, 1)];
          // Only a dispute opened in an earlier group: its debit is in, so a won close adds the reversal.
          if (!target?.dispute || ops.some((op) => op.kind === 'money' && op.label.endsWith(target.dispute!.id))) break;
          target.dispute.closed = true;
          const { id, amount } = target.dispute;
          const status = c.won ? 'won' : 'lost';
          ops.push(
            money(
              `dispute ${status} ${id}`,
              c.won ? amount : 0,
              c.won ? 'applied' : 'status_only',
              events.dispute('closed', target.order, { id, status, amount }),
            ),
          );
          break;
        }
        case 'debit':
        case 'hold': {
          const base = { reference: `ref-${c.ref}`, amount: c.amount, currency: c.currency };
          const seconds = c.kind === 'hold' && c.short && input.expiries ? 1 : 600;
          const op: Op = c.kind === 'debit' ? { kind: 'debit', ...base } : { kind: 'hold', ...base, seconds };
          spent.push(op);
          ops.push(op);
          break;
        }
        case 'retry':
          if (spent.length > 0) ops.push({ ...spent[c.of % spent.length]! });
          break;
        case 'capture':
        case 'release': {
          // A hold of an earlier group; now and then one that does not exist.
          if (knownHolds.length === 0 && c.hold % 4 !== 0) break;
          const holdId = knownHolds.length > 0 && c.hold % 16 !== 0 ? knownHolds[c.hold % knownHolds.length]! : `hold_unknown${tag}`;
          const op: Op = c.kind === 'capture' ? { kind: 'capture', holdId, amount: c.amount } : { kind: 'release', holdId };
          spent.push(op);
          ops.push(op);
          break;
        }
        case 'sweep':
          ops.push({ kind: 'sweep' });
          break;
        case 'lastHolds':
          for (const holdId of knownHolds.slice(-3)) ops.push({ kind: 'capture', holdId, amount: undefined }, { kind: 'release', holdId });
          break;
        case 'wait': {
          // The short holds (1 s) placed so far expire: a second each time, so once in a run and at its end.
          const short = [...model.holds.values()].filter(
            (hold) => hold.status === 'active' && !hold.expired && hold.expiresAt < Date.now() + 2_000,
          );
          if ((waited && !c.final) || short.length === 0) break;
          waited = true;
          await sleep(Math.max(0, ...short.map((hold) => hold.expiresAt - Date.now() + 30)));
          break;
        }
      }
    }
    if (ops.length === 0) continue;

    const before = (await accountBalance(prisma(), accountId))!;
    const windowStart = Date.now() - MARGIN_MS;
    const observed = await Promise.all(ops.map((op) => run(accountId, op)));
    const windowEnd = Date.now() + MARGIN_MS;
    const after = (await accountBalance(prisma(), accountId))!;
    const context = () => JSON.stringify({ group: groupIndex, ops: ops.map(describeOp), observed, before, after }, null, 1);

    // Expiries: before the window for every operation, after it for none, or one more step to place.
    const expiries: Op[] = [];
    for (const hold of model.holds.values()) {
      if (hold.expired || hold.expiresAt > windowEnd) continue;
      if (hold.expiresAt <= windowStart) hold.expired = true;
      else expiries.push({ kind: 'expire', holdId: hold.id });
    }
    const next = serialize(model, ops, observed, expiries);
    if (!next) throw new Error(`no serial order of the group gives these answers: ${context()}`);
    // The ids the database chose, and when its holds expire.
    for (const [index, op] of ops.entries()) {
      const seen = observed[index]!;
      if (op.kind === 'hold' && seen.outcome === 'created') {
        const row = await prisma().hold.findUniqueOrThrow({ where: { id: seen.id! } });
        next.holds.get(seen.id!)!.expiresAt = row.expiresAt.getTime();
      }
      // (1) A created debit or hold leaves available ≥ 0, as its own answer shows.
      if ((op.kind === 'debit' || op.kind === 'hold') && seen.outcome === 'created') {
        expect(seen.available, context()).toBeGreaterThanOrEqual(0);
      }
    }
    model = next;
    paid.push(...pendingPaid);

    // (2) Only refunds and disputes push available down past what it was, and never past zero by more.
    expect(after.available, context()).toBeGreaterThanOrEqual(Math.min(before.available, 0) - taken);
    await expectDatabaseIs(accountId, model, context);
  }
}

const MARGIN_MS = 25;

function money(label: string, delta: number, expected: string, stripeEvent: ReturnType<typeof events.refund>): Op {
  const id = (stripeEvent.data.object as { id: string }).id;
  return {
    kind: 'money',
    label: `${label} ${id}`,
    delta,
    expect: expected,
    run: async () => (await ledger.apply(stripeEvent)).outcomes.join(','),
  };
}

function describeOp(op: Op): string {
  switch (op.kind) {
    case 'money':
      return op.label;
    case 'debit':
    case 'hold':
      return `${op.kind} ${op.amount} ${op.currency} ${op.reference}${op.kind === 'hold' && op.seconds === 1 ? ' (1 s)' : ''}`;
    case 'capture':
      return `capture ${op.amount ?? 'all'} of ${op.holdId}`;
    default:
      return `${op.kind}${'holdId' in op ? ` ${op.holdId}` : ''}`;
  }
}

/** The account's rows equal the model's state, at one instant of the database's clock. */
async function expectDatabaseIs(accountId: string, model: Model, context: () => string) {
  const [{ at } = { at: new Date() }] = await prisma().$queryRaw<{ at: Date }[]>`SELECT clock_timestamp() AS at`;
  const [account] = await prisma().$queryRaw<{ balance: bigint; held: bigint }[]>`
    SELECT balance, ledger_held(id, ${at}::timestamptz) AS held FROM accounts WHERE id = ${accountId}`;
  const holds = await prisma().$queryRaw<{ id: string; status: string; captured_amount: number }[]>`
    SELECT id, ledger_hold_status(status, expires_at, ${at}::timestamptz) AS status, captured_amount
    FROM holds WHERE account_id = ${accountId} ORDER BY id`;
  const spending = await prisma().$queryRaw<{ entry_type: string; reference: string; amount: number }[]>`
    SELECT entry_type::text, reference, amount FROM ledger_entries
    WHERE account_id = ${accountId} AND entry_type IN ('debit', 'hold_capture') ORDER BY entry_type, reference`;

  const now = at.getTime();
  const modelHolds = [...model.holds.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const statusAt = (hold: ModelHold) => (hold.status === 'active' && hold.expiresAt <= now ? 'expired' : hold.status);
  const heldAt = modelHolds.filter((hold) => statusAt(hold) === 'active').reduce((sum, hold) => sum + hold.amount, 0);
  const byKey = (a: { entry_type: string; reference: string }, b: { entry_type: string; reference: string }) =>
    `${a.entry_type} ${a.reference}` < `${b.entry_type} ${b.reference}` ? -1 : 1;
  const modelSpending = [
    ...[...model.debits].map(([reference, debit]) => ({ entry_type: 'debit', reference, amount: -debit.amount })),
    ...modelHolds
      .filter((hold) => hold.status === 'captured')
      .map((hold) => ({ entry_type: 'hold_capture', reference: hold.id, amount: -hold.captured })),
  ].sort(byKey);

  expect({ balance: Number(account!.balance), held: Number(account!.held) }, context()).toEqual({ balance: model.balance, held: heldAt });
  expect(holds, context()).toEqual(modelHolds.map((hold) => ({ id: hold.id, status: statusAt(hold), captured_amount: hold.captured })));
  // One row per debit reference and per captured hold: nothing applied twice.
  expect([...spending].sort(byKey), context()).toEqual(modelSpending);
  expect(await balanceDrift(prisma()), context()).toEqual([]);
}

describe('the spending model', () => {
  it('random credits, refunds, disputes, debits, holds, captures, releases and expiries, in concurrent groups, serialize; balance = Σ ledger; spending never makes available negative; every reference applies once', {
    timeout: 90_000,
  }, async () => {
    await fc.assert(
      fc.asyncProperty(story, async (input) => {
        await runStory(input);
      }),
      // A failure shrinks for at most 50 s (each run is a few round trips, some a 1-s wait); a pass takes ~5-10 s.
      {
        numRuns: 30,
        interruptAfterTimeLimit: 50_000,
        markInterruptAsFailure: true,
        // Expiries are in every run of the property, whatever the seed draws.
        examples: [
          [
            {
              firstCredit: 1_000,
              commands: [
                { kind: 'hold', ref: 1, amount: 600, currency: 'usd', short: true },
                { kind: 'debit', ref: 2, amount: 500, currency: 'usd' },
                { kind: 'wait' },
                { kind: 'debit', ref: 3, amount: 500, currency: 'usd' },
                { kind: 'capture', hold: 0, amount: 100 },
                { kind: 'release', hold: 0 },
              ],
              groupSizes: [2, 1, 3],
              expiries: true,
            },
          ],
        ],
      },
    );
  });
});
