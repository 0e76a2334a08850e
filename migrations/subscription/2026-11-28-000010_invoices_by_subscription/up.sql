-- A subscription's invoices, newest first: the amount due the payment service asks for at every payment, the
-- open invoices a cancellation voids, the usage already billed. Without it each of those read the whole table
-- (the partial index on (subscription_id, kind, period_start) serves only queries naming the kind and status).
CREATE INDEX invoices_subscription_created_idx ON invoices (subscription_id, created_at DESC);
