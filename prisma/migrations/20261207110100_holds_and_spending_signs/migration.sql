-- The sign rule learns the spending types (the same rule as ENTRY_SIGN in
-- packages/ledger/src/postings.ts): a debit and a captured hold take money out. Every existing row
-- met the previous rule, which this one extends, so the new constraint is validated at once.
ALTER TABLE "ledger_entries" DROP CONSTRAINT "ledger_entries_sign_per_type";
ALTER TABLE "ledger_entries" ADD CONSTRAINT "ledger_entries_sign_per_type" CHECK (
  CASE "entry_type"
    WHEN 'topup' THEN "amount" > 0
    WHEN 'refund_reversal' THEN "amount" > 0
    WHEN 'dispute_reversal' THEN "amount" > 0
    WHEN 'refund' THEN "amount" < 0
    WHEN 'dispute' THEN "amount" < 0
    WHEN 'debit' THEN "amount" < 0
    WHEN 'hold_capture' THEN "amount" < 0
    WHEN 'adjustment' THEN "amount" <> 0
    ELSE false
  END
) NOT VALID;
ALTER TABLE "ledger_entries" VALIDATE CONSTRAINT "ledger_entries_sign_per_type";

-- Holds: reservations of an account's credit. available = balance - the sum of active holds.
CREATE TABLE "holds" (
    "id" TEXT NOT NULL,
    "account_id" TEXT NOT NULL,
    "currency" VARCHAR(3) NOT NULL,
    "amount" INTEGER NOT NULL,
    "reference" TEXT NOT NULL,
    "status" "HoldStatus" NOT NULL DEFAULT 'active',
    "captured_amount" INTEGER NOT NULL DEFAULT 0,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "holds_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "holds_amount_positive" CHECK ("amount" > 0),
    -- Only a captured hold took something, and never more than it reserved.
    CONSTRAINT "holds_captured_amount" CHECK (
      CASE WHEN "status" = 'captured' THEN "captured_amount" > 0 AND "captured_amount" <= "amount" ELSE "captured_amount" = 0 END
    ),
    CONSTRAINT "holds_expire_after_creation" CHECK ("expires_at" > "created_at")
);

CREATE INDEX "holds_active_idx" ON "holds"("account_id", "expires_at") WHERE (status = 'active');
CREATE INDEX "holds_expiry_idx" ON "holds"("expires_at") WHERE (status = 'active');
CREATE UNIQUE INDEX "holds_account_id_reference_key" ON "holds"("account_id", "reference");

ALTER TABLE "holds" ADD CONSTRAINT "holds_account_id_currency_fkey" FOREIGN KEY ("account_id", "currency") REFERENCES "accounts"("id", "currency") ON DELETE RESTRICT ON UPDATE RESTRICT;

-- A hold only moves forward: active -> captured | released | expired, and a finished hold never
-- changes again (its capture is in the ledger, which is append-only). Nor is a hold ever removed.
CREATE FUNCTION "holds_forward_only"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' OR OLD."status" <> 'active'
     OR NEW."id" <> OLD."id" OR NEW."account_id" <> OLD."account_id" OR NEW."currency" <> OLD."currency"
     OR NEW."amount" <> OLD."amount" OR NEW."reference" <> OLD."reference"
     OR NEW."expires_at" <> OLD."expires_at" OR NEW."created_at" <> OLD."created_at" THEN
    RAISE EXCEPTION 'holds: % of hold % refused (a hold only moves from active to captured, released or expired)', TG_OP, OLD."id"
      USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER "holds_forward_only"
  BEFORE UPDATE OR DELETE ON "holds"
  FOR EACH ROW EXECUTE FUNCTION "holds_forward_only"();
