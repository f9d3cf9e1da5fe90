import { auditLedger } from '../audit.js';
import { runCli } from './shared.js';

/** `npm run audit`: every balance equals the sum of its ledger; non-zero exit on drift. */
await runCli(
  'audit',
  {
    usage: 'npm run audit',
    summary: 'Reads one consistent snapshot and checks that every balance equals the sum of its ledger and every credited order has exactly one top-up.',
    exitCodes: [[2, 'drift found (the report lists each problem)']],
    needsRedis: false,
  },
  async ({ prisma }) => {
    const report = await auditLedger(prisma);
    console.log(`audited ${report.accounts} accounts, ${report.ledgerEntries} ledger entries, ${report.creditedOrders} credited orders`);
    if (report.problems.length === 0) {
      console.log('OK: every balance equals the sum of its ledger; every credited order has exactly one top-up');
      return 0;
    }
    console.log(`DRIFT: ${report.problems.length} problem(s)`);
    for (const problem of report.problems) console.log(`  ${problem.kind}  ${problem.subject}: ${problem.detail}`);
    return 2;
  },
);
