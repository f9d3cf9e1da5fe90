-- Spending (debits and holds). The new entry types get their sign in the next migration: a value
-- added to an enum can be used only once the transaction that added it has committed.
CREATE TYPE "HoldStatus" AS ENUM ('active', 'captured', 'released', 'expired');

ALTER TYPE "LedgerEntryType" ADD VALUE 'debit';
ALTER TYPE "LedgerEntryType" ADD VALUE 'hold_capture';

-- The caller's description of a debit (kept with the entry it explains).
ALTER TABLE "ledger_entries" ADD COLUMN "description" TEXT;
