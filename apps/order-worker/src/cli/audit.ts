import { auditLedger } from '../operations/audit.js';
import { runCli } from './shared.js';

/** `npm run audit`: every balance equals the sum of its ledger; non-zero exit on drift. */
await runCli(
  'audit',
  {
    usage: 'npm run audit',
    summary:
      'Reads one consistent snapshot and checks that every balance equals the sum of its ledger, every credited order has its credit and no order two top-ups; lists what waits for an operator, the money per currency (credited, refunded, disputed, spent, held, outstanding, debt) and the accounts in debt.',
    exitCodes: [[2, 'drift found (the report lists each problem)']],
    needsRedis: false,
  },
  async ({ prisma }) => {
    const report = await auditLedger(prisma);
    console.log(
      `audited ${report.accounts} accounts, ${report.ledgerEntries} ledger entries, ${report.creditedOrders} credited orders, ${report.reviewOrders} under review`,
    );
    if (report.held.facts > 0 || report.held.events > 0) {
      console.log(
        `HELD: ${report.held.facts} fact(s) on ${report.held.orders.length} order(s) and ${report.held.events} event(s) wait for an operator (npm run review -- list): ${report.held.orders.slice(0, 20).join(', ')}`,
      );
    }
    for (const t of report.totals) {
      console.log(
        `${t.currency}: credited ${t.credited}, refunded ${t.refunded}, disputed ${t.disputed}, adjusted ${t.adjusted}, spent ${t.spent}, held ${t.held}, outstanding ${t.outstanding}, debt ${t.debt}`,
      );
    }
    if (report.debts.length > 0) {
      console.log(`DEBT: ${report.debts.length} account(s) below zero (they spend nothing until a top-up repays it):`);
      for (const debt of report.debts.slice(0, 50)) console.log(`  ${debt.accountId}  ${debt.balance} ${debt.currency}`);
      if (report.debts.length > 50) console.log(`  … and ${report.debts.length - 50} more`);
    }
    if (report.problems.length === 0) {
      console.log('OK: every balance equals the sum of its ledger; every credited order has its credit and no order two top-ups');
      return 0;
    }
    console.log(`DRIFT: ${report.problems.length} problem(s)`);
    for (const problem of report.problems) console.log(`  ${problem.kind}  ${problem.subject}: ${problem.detail}`);
    return 2;
  },
);
