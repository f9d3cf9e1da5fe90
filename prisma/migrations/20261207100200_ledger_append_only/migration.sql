-- The ledger is append-only, enforced by PostgreSQL: a posted entry is never changed or removed,
-- whoever asks (the worker, an operator's psql, a migration). A mistake is corrected by a new
-- entry (an operator's adjustment: npm run review). TRUNCATE is refused too.
CREATE FUNCTION "ledger_entries_append_only"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'ledger_entries is append-only: % refused (post a correcting entry instead)', TG_OP
    USING ERRCODE = 'restrict_violation', HINT = 'npm run review -- resolve <order id> --credit/--dismiss posts an adjustment';
END
$$;

CREATE TRIGGER "ledger_entries_no_update_or_delete"
  BEFORE UPDATE OR DELETE ON "ledger_entries"
  FOR EACH ROW EXECUTE FUNCTION "ledger_entries_append_only"();

CREATE TRIGGER "ledger_entries_no_truncate"
  BEFORE TRUNCATE ON "ledger_entries"
  FOR EACH STATEMENT EXECUTE FUNCTION "ledger_entries_append_only"();
