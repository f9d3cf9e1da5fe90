-- Target of the ledger's (account, currency) foreign key. CONCURRENTLY, alone in its migration
-- (it cannot run in a transaction), so sign-ups and credits keep going while it builds.
CREATE UNIQUE INDEX CONCURRENTLY "accounts_id_currency_key" ON "accounts"("id", "currency");
