-- Money in every Stripe flow: refund reversals, operator adjustments, held facts and their
-- resolutions, events that are not ours, expired orders, and a back-off for reconciliation's
-- checks of unpaid orders. Additive only: the running release ignores what it does not know.
-- (ALTER TYPE … ADD VALUE runs in this transaction on PostgreSQL 12+; nothing here uses the new
-- values before commit.)

-- AlterEnum
ALTER TYPE "LedgerEntryType" ADD VALUE 'refund_reversal';
ALTER TYPE "LedgerEntryType" ADD VALUE 'adjustment';

-- AlterEnum
ALTER TYPE "OrderStatus" ADD VALUE 'expired';

-- AlterEnum
ALTER TYPE "StripeEventStatus" ADD VALUE 'held';
ALTER TYPE "StripeEventStatus" ADD VALUE 'not_ours';

-- CreateEnum
CREATE TYPE "ReviewDecision" AS ENUM ('credit', 'dismiss');

-- AlterTable: nullable / constant defaults, so no table rewrite.
ALTER TABLE "orders" ADD COLUMN     "checks" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "next_check_at" TIMESTAMPTZ(3);

-- AlterTable
ALTER TABLE "stripe_events" ADD COLUMN     "detail" TEXT;

-- CreateTable
CREATE TABLE "held_facts" (
    "id" BIGSERIAL NOT NULL,
    "order_id" TEXT NOT NULL,
    "account_id" TEXT NOT NULL,
    "entry_type" "LedgerEntryType" NOT NULL,
    "reference" TEXT NOT NULL,
    "amount" INTEGER NOT NULL,
    "currency" VARCHAR(3) NOT NULL,
    "reason" TEXT NOT NULL,
    "stripe_event_id" TEXT,
    "resolution_id" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "held_facts_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "review_resolutions" (
    "id" TEXT NOT NULL,
    "order_id" TEXT NOT NULL,
    "account_id" TEXT NOT NULL,
    "decision" "ReviewDecision" NOT NULL,
    "amount" INTEGER NOT NULL,
    "note" TEXT NOT NULL,
    "resolved_by" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "review_resolutions_pkey" PRIMARY KEY ("id")
);

-- CreateIndex (new, empty tables: a plain build takes no time)
CREATE INDEX "held_facts_reference_idx" ON "held_facts"("reference");

-- CreateIndex
CREATE UNIQUE INDEX "held_facts_order_id_entry_type_reference_key" ON "held_facts"("order_id", "entry_type", "reference");

-- CreateIndex
CREATE INDEX "review_resolutions_order_id_idx" ON "review_resolutions"("order_id");

-- AddForeignKey
ALTER TABLE "held_facts" ADD CONSTRAINT "held_facts_order_id_fkey" FOREIGN KEY ("order_id") REFERENCES "orders"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "held_facts" ADD CONSTRAINT "held_facts_resolution_id_fkey" FOREIGN KEY ("resolution_id") REFERENCES "review_resolutions"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "review_resolutions" ADD CONSTRAINT "review_resolutions_order_id_fkey" FOREIGN KEY ("order_id") REFERENCES "orders"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
