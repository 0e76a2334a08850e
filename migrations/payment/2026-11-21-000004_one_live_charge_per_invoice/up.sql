-- One charge in flight or done per invoice: a charge under another key waits until the first has failed, so two
-- callers (a renewal retry and the customer paying by hand) can never both charge the same invoice.
CREATE UNIQUE INDEX transactions_one_live_per_invoice ON transactions (invoice_id) WHERE status IN ('pending', 'succeeded');
