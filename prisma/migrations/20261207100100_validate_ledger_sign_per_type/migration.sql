-- Checks the existing entries against the sign rule. VALIDATE takes a SHARE UPDATE EXCLUSIVE lock:
-- credits keep committing while it scans. `npm run migrate` checks the data first (pre-flight).
ALTER TABLE "ledger_entries" VALIDATE CONSTRAINT "ledger_entries_sign_per_type";
