// Pre-flight checks: for each migration that adds a rule over existing data, the rows that would
// break it. `npm run migrate` runs the checks of every pending migration before applying any of them.
//
// Each check: `tables` it reads (skipped while they do not exist yet), `offenders` (a few rows that
// break the rule, empty when none do), `count` (how many break it), `describe` (one offender in
// words), `rule`, `unit` and `resolve` (what the operator runs).

/**
 * The sign rule of migration 20261207100000_ledger_sign_per_type (extended to the spending types by
 * 20261207110100_holds_and_spending_signs), as a condition over one row.
 */
const SIGN_RULE = `CASE entry_type::text
  WHEN 'topup' THEN amount > 0 WHEN 'refund_reversal' THEN amount > 0 WHEN 'dispute_reversal' THEN amount > 0
  WHEN 'refund' THEN amount < 0 WHEN 'dispute' THEN amount < 0 WHEN 'debit' THEN amount < 0 WHEN 'hold_capture' THEN amount < 0
  WHEN 'adjustment' THEN amount <> 0 ELSE false END`;

/** @type {Record<string, { rule: string, unit: string, tables: string[], offenders: string, count: string, describe: (row: Record<string, unknown>) => string, resolve: string }>} */
export const PREFLIGHT_CHECKS = {
  '20261130150300_validate_ledger_account_currency_fk': {
    rule: "every ledger entry is in its account's currency",
    unit: 'ledger entries in another currency than their account',
    tables: ['ledger_entries', 'accounts'],
    offenders: `
      SELECT l.id, l.account_id, l.currency, a.currency AS account_currency
      FROM ledger_entries l JOIN accounts a ON a.id = l.account_id
      WHERE l.currency <> a.currency ORDER BY l.id LIMIT 5`,
    count: `SELECT COUNT(*) AS total FROM ledger_entries l JOIN accounts a ON a.id = l.account_id WHERE l.currency <> a.currency`,
    describe: (row) => `entry ${row.id} of account ${row.account_id} in ${row.currency} (account holds ${row.account_currency})`,
    // This system never wrote such rows; they come from outside it, and only a person can say
    // which balance they belong to.
    resolve:
      'no automatic fix (this system never writes such entries): move each to an account in its currency, or correct the account, then run npm run audit',
  },
  '20261130150400_one_topup_per_order': {
    rule: 'at most one top-up per order',
    unit: 'orders with more than one top-up',
    tables: ['ledger_entries'],
    offenders: `
      SELECT order_id, MIN(account_id) AS account_id, COUNT(*) AS topups
      FROM ledger_entries WHERE entry_type = 'topup' AND order_id IS NOT NULL
      GROUP BY order_id HAVING COUNT(*) > 1 ORDER BY order_id LIMIT 5`,
    count: `
      SELECT COUNT(*) AS total FROM (
        SELECT order_id FROM ledger_entries WHERE entry_type = 'topup' AND order_id IS NOT NULL GROUP BY order_id HAVING COUNT(*) > 1
      ) AS duplicated`,
    describe: (row) => `order ${row.order_id} (account ${row.account_id}, ${row.topups} top-ups)`,
    resolve:
      'npm run review -- duplicates (lists them), then npm run review -- duplicates --resolve --note "why" (keeps each first top-up)',
  },
  '20261207100100_validate_ledger_sign_per_type': {
    rule: 'every ledger entry has the sign of its type (top-ups and reversals > 0, refunds and disputes < 0, adjustments not 0)',
    unit: 'ledger entries whose sign does not match their type',
    tables: ['ledger_entries'],
    offenders: `
      SELECT id, account_id, entry_type::text AS entry_type, amount, reference
      FROM ledger_entries WHERE NOT (${SIGN_RULE}) ORDER BY id LIMIT 5`,
    count: `SELECT COUNT(*) AS total FROM ledger_entries WHERE NOT (${SIGN_RULE})`,
    describe: (row) => `entry ${row.id} of account ${row.account_id}: ${row.entry_type} ${row.amount} (reference ${row.reference})`,
    // This system always wrote these signs; such rows come from outside it (a hand-written fix, an
    // import), and only a person can say what they meant. The ledger becomes append-only with the
    // next migration, so this is the last moment a row can be corrected in place.
    resolve:
      'no automatic fix (this system never writes such entries): correct each row (the amount with its sign, or the type it really is) and its account balance in one transaction, then run npm run audit',
  },
};
