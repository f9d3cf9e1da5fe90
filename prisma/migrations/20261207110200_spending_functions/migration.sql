-- Spending, one function call (one round trip, one statement) per operation. Each function that
-- moves money or reserves it (debit, hold, capture) takes the account's row lock FIRST and reads
-- everything else after it (a release only frees money: it locks the hold alone): in READ COMMITTED every
-- statement of a plpgsql function sees what committed before it began, so the balance and the
-- holds it reads are those of the last operation that held the lock. (A single SQL statement
-- could not: its CTEs would read a snapshot taken before the lock wait, and two racing debits
-- would both see the old holds.) The unique keys stay the backstop: (account, 'debit',
-- reference) in the ledger, (account, reference) in holds, (account, 'hold_capture', hold id).
--
-- Times are clock_timestamp() taken once the lock is held (`at`), for entries and holds alike:
-- now() would be the transaction's start, before the lock wait, and misorder them.
--
-- Every function answers one row of the same shape: an outcome, the debit or hold it concerns
-- (when there is one), and the account's balance and held amount after it.

-- A hold counts against available while it is active and not past expires_at: expiry is computed
-- here, at read time; the sweeper (ledger_expire_holds) only records it.
CREATE FUNCTION "ledger_hold_status"(p_status "HoldStatus", p_expires_at timestamptz, p_at timestamptz)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN p_status = 'active' AND p_expires_at <= p_at THEN 'expired' ELSE p_status::text END
$$;

CREATE FUNCTION "ledger_held"(p_account_id text, p_at timestamptz)
RETURNS bigint LANGUAGE sql STABLE AS $$
  SELECT COALESCE(SUM("amount"), 0)::bigint FROM "holds"
  WHERE "account_id" = p_account_id AND "status" = 'active' AND "expires_at" > p_at
$$;

CREATE TYPE "ledger_spending_result" AS (
  outcome text,
  kind text,
  id text,
  account_id text,
  currency text,
  amount integer,
  reference text,
  description text,
  status text,
  captured_amount integer,
  expires_at timestamptz,
  created_at timestamptz,
  updated_at timestamptz,
  balance bigint,
  held bigint
);

-- The answers below carry the account's balance and held amount: given by a caller that already
-- has them under the lock (p_balance, p_held), read otherwise.

-- The answer about a hold row, its status computed at p_at.
CREATE FUNCTION "ledger_hold_result"(p_outcome text, h "holds", p_at timestamptz, p_balance bigint DEFAULT NULL, p_held bigint DEFAULT NULL)
RETURNS "ledger_spending_result" LANGUAGE sql STABLE AS $$
  SELECT ROW(p_outcome, 'hold', h."id", h."account_id", h."currency", h."amount", h."reference", NULL,
    "ledger_hold_status"(h."status", h."expires_at", p_at), h."captured_amount", h."expires_at", h."created_at", h."updated_at",
    COALESCE(p_balance, (SELECT a."balance" FROM "accounts" a WHERE a."id" = h."account_id")),
    COALESCE(p_held, "ledger_held"(h."account_id", p_at)))::"ledger_spending_result"
$$;

-- The answer about a debit (a ledger entry).
CREATE FUNCTION "ledger_debit_result"(p_outcome text, e "ledger_entries", p_at timestamptz, p_balance bigint DEFAULT NULL, p_held bigint DEFAULT NULL)
RETURNS "ledger_spending_result" LANGUAGE sql STABLE AS $$
  SELECT ROW(p_outcome, 'debit', 'deb_' || e."id"::text, e."account_id", e."currency", -e."amount", e."reference", e."description",
    'posted', NULL::integer, NULL::timestamptz, e."created_at", e."created_at",
    COALESCE(p_balance, (SELECT a."balance" FROM "accounts" a WHERE a."id" = e."account_id")),
    COALESCE(p_held, "ledger_held"(e."account_id", p_at)))::"ledger_spending_result"
$$;

-- An answer with no debit or hold in it (a refusal), with the account's figures when it exists.
CREATE FUNCTION "ledger_refusal"(p_outcome text, p_account_id text, p_at timestamptz, p_held bigint DEFAULT NULL)
RETURNS "ledger_spending_result" LANGUAGE sql STABLE AS $$
  SELECT ROW(p_outcome, NULL, NULL, p_account_id, a."currency", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    a."balance", CASE WHEN a."id" IS NULL THEN NULL ELSE COALESCE(p_held, "ledger_held"(p_account_id, p_at)) END)::"ledger_spending_result"
  FROM (SELECT 1) AS one LEFT JOIN "accounts" a ON a."id" = p_account_id
$$;

-- The rules a new debit or hold must pass once its own replay was ruled out, for an account the
-- caller has locked: its reference is not taken by the other kind of operation, its currency is
-- the account's, and it fits in available (a debt included: a negative balance fits nothing).
-- NULL when it may go ahead, else the refusal.
CREATE FUNCTION "ledger_spending_refusal"(account "accounts", p_amount integer, p_currency text, p_reference text, p_held bigint)
RETURNS text LANGUAGE sql STABLE AS $$
  SELECT CASE
    WHEN EXISTS (SELECT 1 FROM "holds" WHERE "account_id" = account."id" AND "reference" = p_reference)
      OR EXISTS (SELECT 1 FROM "ledger_entries" WHERE "account_id" = account."id" AND "entry_type" = 'debit' AND "reference" = p_reference)
      THEN 'reference_conflict'
    WHEN account."currency" <> p_currency THEN 'currency_mismatch'
    WHEN account."balance" - p_held < p_amount THEN 'insufficient_funds'
  END
$$;

-- A debit of p_amount (> 0) under the caller's reference. Outcomes: created, replayed (this
-- reference was debited before with this amount and currency), reference_conflict (it was used
-- with another body, or by a hold), unknown_account, currency_mismatch, insufficient_funds
-- (nothing written: available = balance - active holds is below p_amount, a debt included).
CREATE FUNCTION "ledger_debit"(p_account_id text, p_amount integer, p_currency text, p_reference text, p_description text)
RETURNS "ledger_spending_result" LANGUAGE plpgsql AS $$
DECLARE
  account "accounts";
  entry "ledger_entries";
  refusal text;
  held bigint;
  at timestamptz;
BEGIN
  IF p_amount IS NULL OR p_amount <= 0 THEN
    RAISE EXCEPTION 'a debit is a positive amount, got %', p_amount USING ERRCODE = 'check_violation';
  END IF;
  SELECT * INTO account FROM "accounts" WHERE "id" = p_account_id FOR UPDATE;
  IF NOT FOUND THEN RETURN "ledger_refusal"('unknown_account', p_account_id, clock_timestamp()); END IF;
  at := clock_timestamp();
  held := "ledger_held"(p_account_id, at);

  SELECT * INTO entry FROM "ledger_entries"
  WHERE "account_id" = p_account_id AND "entry_type" = 'debit' AND "reference" = p_reference;
  IF FOUND THEN
    RETURN "ledger_debit_result"(
      CASE WHEN entry."amount" = -p_amount AND entry."currency" = p_currency THEN 'replayed' ELSE 'reference_conflict' END,
      entry, at, account."balance", held);
  END IF;
  refusal := "ledger_spending_refusal"(account, p_amount, p_currency, p_reference, held);
  IF refusal IS NOT NULL THEN RETURN "ledger_refusal"(refusal, p_account_id, at, held); END IF;

  INSERT INTO "ledger_entries" ("account_id", "entry_type", "amount", "currency", "reference", "description", "created_at")
  VALUES (p_account_id, 'debit', -p_amount, p_currency, p_reference, p_description, at)
  RETURNING * INTO entry;
  UPDATE "accounts" SET "balance" = "balance" - p_amount, "updated_at" = now() WHERE "id" = p_account_id;
  RETURN "ledger_debit_result"('created', entry, at, account."balance" - p_amount, held);
END
$$;

-- A hold of p_amount (> 0) until p_expires_in_seconds from now, id p_hold_id (the caller makes an
-- unguessable one). Outcomes as ledger_debit's; replayed answers the hold as it is now.
CREATE FUNCTION "ledger_place_hold"(p_account_id text, p_amount integer, p_currency text, p_reference text, p_hold_id text,
  p_expires_in_seconds integer)
RETURNS "ledger_spending_result" LANGUAGE plpgsql AS $$
DECLARE
  account "accounts";
  hold "holds";
  refusal text;
  held bigint;
  at timestamptz;
BEGIN
  IF p_amount IS NULL OR p_amount <= 0 THEN
    RAISE EXCEPTION 'a hold is a positive amount, got %', p_amount USING ERRCODE = 'check_violation';
  END IF;
  IF p_expires_in_seconds IS NULL OR p_expires_in_seconds <= 0 THEN
    RAISE EXCEPTION 'a hold expires in a positive number of seconds, got %', p_expires_in_seconds USING ERRCODE = 'check_violation';
  END IF;
  SELECT * INTO account FROM "accounts" WHERE "id" = p_account_id FOR UPDATE;
  IF NOT FOUND THEN RETURN "ledger_refusal"('unknown_account', p_account_id, clock_timestamp()); END IF;
  at := clock_timestamp();
  held := "ledger_held"(p_account_id, at);

  SELECT * INTO hold FROM "holds" WHERE "account_id" = p_account_id AND "reference" = p_reference;
  IF FOUND THEN
    RETURN "ledger_hold_result"(
      CASE WHEN hold."amount" = p_amount AND hold."currency" = p_currency THEN 'replayed' ELSE 'reference_conflict' END,
      hold, at, account."balance", held);
  END IF;
  refusal := "ledger_spending_refusal"(account, p_amount, p_currency, p_reference, held);
  IF refusal IS NOT NULL THEN RETURN "ledger_refusal"(refusal, p_account_id, at, held); END IF;

  INSERT INTO "holds" ("id", "account_id", "currency", "amount", "reference", "expires_at", "created_at", "updated_at")
  VALUES (p_hold_id, p_account_id, p_currency, p_amount, p_reference, at + make_interval(secs => p_expires_in_seconds), at, at)
  RETURNING * INTO hold;
  RETURN "ledger_hold_result"('created', hold, at, account."balance", held + p_amount);
END
$$;

-- Captures p_amount of an active hold (NULL: all of it) as one hold_capture entry (reference: the
-- hold id); the rest is available again at once. Outcomes: captured, replayed (captured before
-- with this amount), not_active (captured with another amount, released, expired), exceeds_hold,
-- unknown_hold. A capture takes what the hold reserved, so it is not refused by a debt that came
-- after the hold (a refund): the service was delivered against the reservation.
CREATE FUNCTION "ledger_capture_hold"(p_hold_id text, p_amount integer)
RETURNS "ledger_spending_result" LANGUAGE plpgsql AS $$
DECLARE
  owner text;
  hold "holds";
  taken integer;
  at timestamptz;
BEGIN
  IF p_amount IS NOT NULL AND p_amount <= 0 THEN
    RAISE EXCEPTION 'a capture is a positive amount, got %', p_amount USING ERRCODE = 'check_violation';
  END IF;
  SELECT "account_id" INTO owner FROM "holds" WHERE "id" = p_hold_id;
  IF NOT FOUND THEN RETURN "ledger_refusal"('unknown_hold', NULL, clock_timestamp()); END IF;
  -- The account first, as every spending operation, then the hold.
  PERFORM 1 FROM "accounts" WHERE "id" = owner FOR UPDATE;
  SELECT * INTO hold FROM "holds" WHERE "id" = p_hold_id FOR UPDATE;
  at := clock_timestamp();
  taken := COALESCE(p_amount, hold."amount");

  IF hold."status" = 'captured' THEN
    RETURN "ledger_hold_result"(CASE WHEN hold."captured_amount" = taken THEN 'replayed' ELSE 'not_active' END, hold, at);
  END IF;
  IF "ledger_hold_status"(hold."status", hold."expires_at", at) <> 'active' THEN
    RETURN "ledger_hold_result"('not_active', hold, at);
  END IF;
  IF taken > hold."amount" THEN RETURN "ledger_hold_result"('exceeds_hold', hold, at); END IF;

  INSERT INTO "ledger_entries" ("account_id", "entry_type", "amount", "currency", "reference", "created_at")
  VALUES (hold."account_id", 'hold_capture', -taken, hold."currency", hold."id", at);
  UPDATE "accounts" SET "balance" = "balance" - taken, "updated_at" = now() WHERE "id" = hold."account_id";
  UPDATE "holds" SET "status" = 'captured', "captured_amount" = taken, "updated_at" = at WHERE "id" = p_hold_id
  RETURNING * INTO hold;
  RETURN "ledger_hold_result"('captured', hold, at);
END
$$;

-- Releases an active hold: its amount is available again. Outcomes: released, replayed (released
-- before), not_active (captured or expired), unknown_hold. Only the hold row is locked: a release
-- moves no balance, and can only make more available.
CREATE FUNCTION "ledger_release_hold"(p_hold_id text)
RETURNS "ledger_spending_result" LANGUAGE plpgsql AS $$
DECLARE
  hold "holds";
  at timestamptz;
BEGIN
  SELECT * INTO hold FROM "holds" WHERE "id" = p_hold_id FOR UPDATE;
  at := clock_timestamp();
  IF NOT FOUND THEN RETURN "ledger_refusal"('unknown_hold', NULL, at); END IF;
  IF hold."status" = 'released' THEN RETURN "ledger_hold_result"('replayed', hold, at); END IF;
  IF "ledger_hold_status"(hold."status", hold."expires_at", at) <> 'active' THEN
    RETURN "ledger_hold_result"('not_active', hold, at);
  END IF;
  UPDATE "holds" SET "status" = 'released', "updated_at" = at WHERE "id" = p_hold_id RETURNING * INTO hold;
  RETURN "ledger_hold_result"('released', hold, at);
END
$$;

-- The sweeper: records as expired up to p_limit active holds past expires_at (they already
-- stopped counting at that moment). Holds a capture or release is deciding are skipped this time.
CREATE FUNCTION "ledger_expire_holds"(p_limit integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  expired integer;
BEGIN
  WITH due AS (
    SELECT "id" FROM "holds" WHERE "status" = 'active' AND "expires_at" <= clock_timestamp()
    ORDER BY "expires_at" LIMIT p_limit FOR UPDATE SKIP LOCKED
  )
  UPDATE "holds" h SET "status" = 'expired', "updated_at" = clock_timestamp() FROM due WHERE h."id" = due."id";
  GET DIAGNOSTICS expired = ROW_COUNT;
  RETURN expired;
END
$$;
