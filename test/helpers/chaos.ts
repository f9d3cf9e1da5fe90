import { expect } from 'vitest';
import { runChaos, type ChaosOptions, type ChaosSummary } from '../../scripts/chaos/run.js';

/** What a short chaos run in the suite chooses; the rest is the same for every such run. */
type ShortRunOptions = Omit<ChaosOptions, 'dropRate' | 'databaseUrl' | 'niceness' | 'signal' | 'log'> & {
  databaseUrl: string;
  /** Stop, and stop every process the run started, before vitest's own timeout would leave them. */
  abortAfterMs: number;
};

/**
 * Runs the chaos run as the suite does: 1% of webhooks never sent (the final reconciliation pass
 * must find them), the system's processes niced so they yield to the test file running beside, and
 * the run's own log kept as the context of every assertion.
 */
export async function runShortChaos(options: ShortRunOptions): Promise<{ summary: ChaosSummary; context: string }> {
  const { abortAfterMs, ...rest } = options;
  const lines: string[] = [];
  const summary = await runChaos({
    ...rest,
    dropRate: 0.01,
    niceness: 10,
    signal: AbortSignal.timeout(abortAfterMs),
    log: (line) => lines.push(line),
  });
  console.log(summary.line);
  return { summary, context: `${summary.line}\n${lines.join('\n')}` };
}

/** Nothing lost, nothing doubled, every balance equal to its ledger, every status and entry right. */
export function expectNothingLostOrDoubled(summary: ChaosSummary, context: string): void {
  expect(summary.lost, context).toBe(0);
  expect(summary.doubled, context).toBe(0);
  expect(summary.balancesOk, context).toBe(true);
  expect(summary.verify.audit.problems, context).toEqual([]);
  expect(summary.verify.wrongStatuses, context).toBe(0);
  expect(summary.verify.wrongEntries, context).toBe(0);
  expect(summary.verify.extraOrders, context).toBe(0);
  expect(summary.unexplainedFailedJobs, context).toBe(0);
  expect(summary.crashes, context).toEqual([]);
  expect(summary.ok, context).toBe(true);
  // The ledger holds every fact: one top-up per paid order, one entry per refund and dispute.
  expect(summary.verify.ledgerEntries, context).toBe(summary.verify.expectedEntries);
  // Spending: never beyond an account's money, every confirmed debit and capture once, nothing else.
  expect(summary.overspent, context).toBe(0);
  expect(summary.line, context).toContain(', overspent 0,');
  const { spending } = summary;
  expect({ lost: spending.lost, doubled: spending.doubled, wrong: spending.wrong, activeHolds: spending.activeHolds }, context).toEqual({
    lost: 0,
    doubled: 0,
    wrong: 0,
    activeHolds: 0,
  });
  expect(spending.unexpectedAnswers, context).toBe(0);
  expect(summary.verify.spendingEntries, context).toBe(spending.debits + spending.captures);
}
