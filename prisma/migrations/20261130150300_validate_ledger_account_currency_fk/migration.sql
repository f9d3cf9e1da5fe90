-- Checks the existing entries against the (account, currency) key. VALIDATE takes a SHARE UPDATE
-- EXCLUSIVE lock: credits keep committing while it scans. `npm run migrate` checks the data first.
ALTER TABLE "ledger_entries" VALIDATE CONSTRAINT "ledger_entries_account_id_currency_fkey";
