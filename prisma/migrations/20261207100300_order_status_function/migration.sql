-- THE order-status rule in SQL: the twin of statusOf in packages/ledger/src/order-status.ts, for
-- statements that set an order's status in PostgreSQL (the group-commit credit). test/
-- order-status.test.ts runs every combination through both. Arguments: how far the payment got
-- ('paid' once the account was credited for the order), then the order's review_reason,
-- dispute_status, amount_refunded and amount.
CREATE FUNCTION "ledger_order_status"(progress text, review_reason text, dispute_status text, amount_refunded integer, amount integer)
RETURNS "OrderStatus" LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT (CASE
    WHEN $2 IS NOT NULL THEN 'needs_review'
    WHEN $3 IN ('open', 'lost') THEN 'disputed'
    WHEN $1 <> 'paid' THEN $1
    WHEN $4 >= $5 THEN 'refunded'
    WHEN $4 > 0 THEN 'partially_refunded'
    ELSE 'credited' END)::"OrderStatus"
$$;
