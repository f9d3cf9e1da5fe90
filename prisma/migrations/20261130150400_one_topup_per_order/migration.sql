-- At most one top-up per order, whatever PaymentIntent pays it. CONCURRENTLY, alone in its
-- migration, so credits keep committing while it builds; `npm run migrate` checks for orders that
-- already have two top-ups first (`npm run review -- duplicates` settles them).
CREATE UNIQUE INDEX CONCURRENTLY "ledger_entries_one_topup_per_order" ON "ledger_entries"("order_id") WHERE (entry_type = 'topup');
