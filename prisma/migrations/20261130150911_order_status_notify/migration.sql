-- Long-poll status (GET /orders/:id?wait=…): every change of an order's status, whichever code path
-- makes it (worker, reconciliation, operators, plain SQL), notifies the receivers that LISTEN on
-- `order_status`. The payload is the order id. NOTIFY is delivered when the transaction commits, and
-- not at all when it rolls back.
CREATE FUNCTION "notify_order_status"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('order_status', NEW."id");
  RETURN NULL;
END
$$;

CREATE TRIGGER "orders_status_notify"
  AFTER UPDATE OF "status" ON "orders"
  FOR EACH ROW
  WHEN (OLD."status" IS DISTINCT FROM NEW."status")
  EXECUTE FUNCTION "notify_order_status"();
