-- Inbox retention deletes old rows by received_at in small batches. CONCURRENTLY, alone in its
-- migration: the inbox grows with traffic and every credit writes to it.
CREATE INDEX CONCURRENTLY "stripe_events_received_at_idx" ON "stripe_events"("received_at");
