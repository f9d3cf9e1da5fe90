-- Every ledger entry is in its account's currency, enforced by PostgreSQL: an account's currency can
-- change only while it has no entries (the first credited order fixes it), and a credit in another
-- currency cannot go in. NOT VALID: new rows are checked at once, the existing ones by the next
-- migration, which does not block writes. It replaces the plain account foreign key.

-- AddForeignKey
ALTER TABLE "ledger_entries" ADD CONSTRAINT "ledger_entries_account_id_currency_fkey" FOREIGN KEY ("account_id", "currency") REFERENCES "accounts"("id", "currency") ON DELETE RESTRICT ON UPDATE RESTRICT NOT VALID;

-- DropForeignKey
ALTER TABLE "ledger_entries" DROP CONSTRAINT "ledger_entries_account_id_fkey";
