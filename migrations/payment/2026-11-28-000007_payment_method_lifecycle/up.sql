-- A deleted payment method stays for the payments that used it (their history), but is never charged again.
ALTER TABLE payment_methods ADD COLUMN deleted_at timestamptz;
-- At most one default per user among the live methods.
ALTER TABLE payment_methods ALTER COLUMN is_default SET DEFAULT false;
UPDATE payment_methods SET is_default = false;
CREATE UNIQUE INDEX payment_methods_one_default_per_user ON payment_methods (user_id)
    WHERE is_default AND deleted_at IS NULL;
