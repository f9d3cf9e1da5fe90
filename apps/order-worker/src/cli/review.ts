import { listReviews, showReview } from '@ledger/ledger';
import { listDuplicateTopups, resolveDuplicateTopups, resolveReview, ReviewRequestError } from '../operations/review.js';
import { runCli } from './shared.js';

const COMMANDS = `Commands:
  list                                   orders under review, with what is held for each
  show <order id>                        an order's held facts, resolutions and ledger entries
  resolve <order id> --credit --note "…" [--amount <minor units>] [--by <name>]
                                         post what is held (or --amount) as one adjustment entry
  resolve <order id> --dismiss --note "…" [--by <name>]
                                         settle the review without moving money
  duplicates [--resolve --note "…"] [--by <name>]
                                         orders with two top-ups (from before one top-up per order
                                         was enforced); --resolve keeps each first top-up, turns the
                                         others into adjustments and puts the orders under review`;

interface ReviewOptions {
  credit?: boolean;
  dismiss?: boolean;
  note?: string;
  amount?: string;
  resolve?: boolean;
}

/** What is wrong with a command line, checked before anything connects; undefined when it is fine. */
function usageProblem(values: ReviewOptions, positionals: string[]): string | undefined {
  const [command, orderId, ...rest] = positionals;
  switch (command) {
    case 'list':
      return orderId ? 'list takes no order id' : undefined;
    case 'show':
      return !orderId || rest.length > 0 ? 'show takes one order id' : undefined;
    case 'resolve': {
      if (!orderId || rest.length > 0) return 'resolve takes one order id';
      if (values.credit === values.dismiss) return 'resolve needs exactly one of --credit and --dismiss';
      if (!values.note?.trim()) return 'resolve needs --note "why"';
      const amount = values.amount === undefined ? undefined : Number(values.amount);
      if (amount !== undefined && (!Number.isSafeInteger(amount) || amount === 0 || values.dismiss)) {
        return '--amount takes a non-zero integer of minor units, with --credit only';
      }
      return undefined;
    }
    case 'duplicates':
      if (orderId) return 'duplicates takes no order id';
      return values.resolve && !values.note?.trim() ? 'duplicates --resolve needs --note "why"' : undefined;
    default:
      return command ? `unknown command ${command}` : 'give a command';
  }
}

/** `npm run review`: operators settle orders under `needs_review`, exactly once. */
await runCli(
  'review',
  {
    usage: 'npm run review -- list | show <order id> | resolve <order id> --credit|--dismiss --note "…" | duplicates',
    summary: `Operators settle orders under needs_review, exactly once.\n\n${COMMANDS}`,
    options: {
      credit: { type: 'boolean', description: 'resolve: post what is held (or --amount) as one adjustment entry' },
      dismiss: { type: 'boolean', description: 'resolve: settle the review without moving money' },
      note: { type: 'string', value: '"…"', description: 'why (resolve, duplicates --resolve)' },
      amount: { type: 'string', value: 'N', description: 'resolve --credit: minor units to post instead of what is held' },
      by: { type: 'string', value: 'NAME', description: 'who resolves (default $USER)' },
      resolve: { type: 'boolean', description: 'duplicates: settle every order with two top-ups' },
    },
    positionals: 'list | show <order id> | resolve <order id> | duplicates',
    exitCodes: [[1, 'failed (unknown order, a request that cannot be carried out), bad environment, PostgreSQL unreachable']],
    needsRedis: false,
    check: ({ values, positionals }) => usageProblem(values, positionals),
  },
  async ({ values, positionals, prisma }) => {
    // usageProblem checked the command line before anything connected: what a command needs is there.
    const [command, orderId = ''] = positionals;
    const note = values.note ?? '';
    const resolvedBy = values.by ?? process.env.USER ?? 'operator';

    switch (command) {
      case 'list': {
        const reviews = await listReviews(prisma);
        if (reviews.length === 0) console.log('no order is under review');
        for (const review of reviews) {
          console.log(
            `${review.orderId}  ${review.accountId}  ${review.amount} ${review.currency}  held ${review.heldFacts} (${review.heldAmount})  ${review.reason}`,
          );
        }
        return 0;
      }
      case 'show': {
        const detail = await showReview(prisma, orderId);
        if (!detail) {
          console.error(`no order ${orderId}`);
          return 1;
        }
        console.log(JSON.stringify(detail, null, 2));
        return 0;
      }
      case 'resolve': {
        const amount = values.amount === undefined ? undefined : Number(values.amount);
        try {
          const result = await resolveReview(prisma, {
            orderId,
            decision: values.credit ? 'credit' : 'dismiss',
            note,
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
        const duplicates = await listDuplicateTopups(prisma);
        if (duplicates.length === 0) {
          console.log('no order has more than one top-up');
          return 0;
        }
        for (const duplicate of duplicates) {
          console.log(
            `${duplicate.orderId}  ${duplicate.accountId}  ${duplicate.topups.map((topup) => `${topup.reference} ${topup.amount}`).join(', ')}`,
          );
        }
        if (!values.resolve) {
          console.log(
            `${duplicates.length} order(s) with more than one top-up; settle with: npm run review -- duplicates --resolve --note "why"`,
          );
          return 0;
        }
        let converted = 0;
        for (const duplicate of duplicates) {
          converted += (await resolveDuplicateTopups(prisma, { orderId: duplicate.orderId, note, resolvedBy })).converted;
        }
        console.log(
          `settled ${duplicates.length} order(s): ${converted} later top-up(s) became adjustments; the orders are under review (npm run review -- list)`,
        );
        return 0;
      }
      default:
        throw new Error(`unknown command ${command}`);
    }
  },
);
