import { parseArgs } from 'node:util';
import { listReviews, showReview } from '@ledger/shared';
import { listDuplicateTopups, resolveDuplicateTopups, resolveReview, ReviewRequestError } from '../review.js';
import { runCli } from './shared.js';

const USAGE = `usage: npm run review -- <command>

  list                                   orders under review, with what is held for each
  show <order id>                        an order's held facts, resolutions and ledger entries
  resolve <order id> --credit --note "…" [--amount <minor units>] [--by <name>]
                                         post what is held (or --amount) as one adjustment entry
  resolve <order id> --dismiss --note "…" [--by <name>]
                                         settle the review without moving money
  duplicates [--resolve --note "…"] [--by <name>]
                                         orders with two top-ups (from before one top-up per order
                                         was enforced); --resolve keeps each first top-up, turns the
                                         others into adjustments and puts the orders under review

Exit codes: 0 done, 1 failed (unknown order, a request that cannot be carried out), 64 bad usage.`;

function usage(message?: string): number {
  if (message) console.error(message);
  console.error(USAGE);
  return 64;
}

/** `npm run review`: operators settle orders under `needs_review`, exactly once. */
await runCli('review', async ({ prisma }) => {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      strict: true,
      options: {
        credit: { type: 'boolean' },
        dismiss: { type: 'boolean' },
        note: { type: 'string' },
        amount: { type: 'string' },
        by: { type: 'string' },
        resolve: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    return usage(error instanceof Error ? error.message : String(error));
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const [command, orderId, ...rest] = positionals;
  const resolvedBy = values.by ?? process.env.USER ?? 'operator';

  switch (command) {
    case 'list': {
      const reviews = await listReviews(prisma);
      if (reviews.length === 0) console.log('no order is under review');
      for (const review of reviews) {
        console.log(`${review.orderId}  ${review.accountId}  ${review.amount} ${review.currency}  held ${review.heldFacts} (${review.heldAmount})  ${review.reason}`);
      }
      return 0;
    }
    case 'show': {
      if (!orderId || rest.length > 0) return usage('show takes one order id');
      const detail = await showReview(prisma, orderId);
      if (!detail) {
        console.error(`no order ${orderId}`);
        return 1;
      }
      console.log(JSON.stringify(detail, null, 2));
      return 0;
    }
    case 'resolve': {
      if (!orderId || rest.length > 0) return usage('resolve takes one order id');
      if (values.credit === values.dismiss) return usage('resolve needs exactly one of --credit and --dismiss');
      if (!values.note?.trim()) return usage('resolve needs --note "why"');
      const amount = values.amount === undefined ? undefined : Number(values.amount);
      if (amount !== undefined && (!Number.isSafeInteger(amount) || amount === 0 || values.dismiss)) {
        return usage('--amount takes a non-zero integer of minor units, with --credit only');
      }
      try {
        const result = await resolveReview(prisma, {
          orderId,
          decision: values.credit ? 'credit' : 'dismiss',
          note: values.note,
          resolvedBy,
          ...(amount === undefined ? {} : { amount }),
        });
        if (result.outcome === 'unknown_order') {
          console.error(`no order ${orderId}`);
          return 1;
        }
        if (result.outcome === 'not_under_review') {
          console.log(`order ${orderId} is not under review (status ${result.status}): nothing done`);
          return 0;
        }
        console.log(
          `resolved ${orderId} as ${result.resolutionId}: ${result.amount === 0 ? 'no money moved' : `adjustment ${result.amount}`}, ` +
            `${result.heldFacts} held fact(s) settled; status ${result.status}`,
        );
        return 0;
      } catch (error) {
        if (!(error instanceof ReviewRequestError)) throw error;
        console.error(`cannot resolve ${orderId}: ${error.message}`);
        return 1;
      }
    }
    case 'duplicates': {
      if (orderId) return usage('duplicates takes no order id');
      const duplicates = await listDuplicateTopups(prisma);
      if (duplicates.length === 0) {
        console.log('no order has more than one top-up');
        return 0;
      }
      for (const duplicate of duplicates) {
        console.log(`${duplicate.orderId}  ${duplicate.accountId}  ${duplicate.topups.map((topup) => `${topup.reference} ${topup.amount}`).join(', ')}`);
      }
      if (!values.resolve) {
        console.log(`${duplicates.length} order(s) with more than one top-up; settle with: npm run review -- duplicates --resolve --note "why"`);
        return 0;
      }
      if (!values.note?.trim()) return usage('duplicates --resolve needs --note "why"');
      let converted = 0;
      for (const duplicate of duplicates) {
        converted += (await resolveDuplicateTopups(prisma, { orderId: duplicate.orderId, note: values.note, resolvedBy })).converted;
      }
      console.log(`settled ${duplicates.length} order(s): ${converted} later top-up(s) became adjustments; the orders are under review (npm run review -- list)`);
      return 0;
    }
    default:
      return usage(command ? `unknown command ${command}` : undefined);
  }
});
