DROP INDEX subscriptions_trial_end_idx;
DROP INDEX invoices_initial_open_due_idx;
DROP INDEX invoices_retry_due_idx;
ALTER TABLE invoices DROP COLUMN last_decline_code, DROP COLUMN next_attempt_at, DROP COLUMN attempt_count;
