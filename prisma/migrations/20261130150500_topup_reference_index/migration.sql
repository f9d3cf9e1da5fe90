-- Refunds and disputes find the order a PaymentIntent credited through its top-up reference.
-- CONCURRENTLY, alone in its migration, so credits keep committing while it builds.
CREATE INDEX CONCURRENTLY "ledger_entries_topup_reference_idx" ON "ledger_entries"("reference") WHERE (entry_type = 'topup');
