-- The billing cycle over time: charge attempts of an invoice are numbered, and the next one (dunning) waits for
-- the previous one's outcome and its scheduled time.
ALTER TABLE invoices
    ADD COLUMN attempt_count     integer NOT NULL DEFAULT 0 CHECK (attempt_count >= 0),
    ADD COLUMN next_attempt_at   timestamptz,
    ADD COLUMN last_decline_code text;

-- What the scheduler scans: retries due, unpaid first invoices past their due time, trials at their end.
CREATE INDEX invoices_retry_due_idx ON invoices (next_attempt_at) WHERE status = 'open' AND next_attempt_at IS NOT NULL;
CREATE INDEX invoices_initial_open_due_idx ON invoices (due_at) WHERE status = 'open' AND kind = 'initial';
CREATE INDEX subscriptions_trial_end_idx ON subscriptions (trial_end) WHERE status = 'trial';
