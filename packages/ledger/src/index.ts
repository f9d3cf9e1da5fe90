// @ledger/ledger: the money code. Start at apply.ts (money coming in), then payments.ts (the
// general path's decisions), postings.ts (the one function that posts an entry, its sign from its
// type), orders.ts (locks and order states), inbox.ts (stripe_events), statements.ts (every SQL
// statement, by name), group-commit/ (the batched credit statement and its batcher) and spending.ts
// (debits and holds: money going out, one PostgreSQL function call each).
export * from './apply.js';
export * from './group-commit/batcher.js';
export * from './group-commit/statement.js';
export * from './inbox.js';
export * from './order-status.js';
export * from './orders.js';
export * from './payments.js';
export * from './postings.js';
export { BALANCE_DRIFT_SQL, CREDIT_PAYMENTS_SQL } from './statements.js';
export type * from './types.js';
export * from './reviews.js';
export * from './spending.js';
