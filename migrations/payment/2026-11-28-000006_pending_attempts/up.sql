-- Whether an attempt was charged without the customer present (renewals, retries, conversions, prorations): a
-- pending attempt settled later (by the gateway's event or the reconciler) announces it the same way.
ALTER TABLE transactions ADD COLUMN off_session boolean NOT NULL DEFAULT false;
-- The reconciler looks for attempts left pending.
CREATE INDEX transactions_pending_created_at ON transactions (created_at) WHERE status = 'pending';
