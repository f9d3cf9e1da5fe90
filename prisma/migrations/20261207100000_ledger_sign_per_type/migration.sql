-- The sign of every ledger entry follows from its type, enforced by PostgreSQL (the same rule as
-- ENTRY_SIGN in packages/ledger/src/postings.ts): money in is positive (a top-up, a refund that
-- failed or was canceled, a dispute won), money out negative (a refund, a dispute), an operator's
-- adjustment either way but never 0. A type without a rule here is refused (ELSE false): a new
-- entry type must say its sign. NOT VALID: new rows are checked at once, the existing ones by the
-- next migration, which does not block writes.
ALTER TABLE "ledger_entries" ADD CONSTRAINT "ledger_entries_sign_per_type" CHECK (
  CASE "entry_type"
    WHEN 'topup' THEN "amount" > 0
    WHEN 'refund_reversal' THEN "amount" > 0
    WHEN 'dispute_reversal' THEN "amount" > 0
    WHEN 'refund' THEN "amount" < 0
    WHEN 'dispute' THEN "amount" < 0
    WHEN 'adjustment' THEN "amount" <> 0
    ELSE false
  END
) NOT VALID;
