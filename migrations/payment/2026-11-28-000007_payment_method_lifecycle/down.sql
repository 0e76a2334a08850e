DROP INDEX payment_methods_one_default_per_user;
ALTER TABLE payment_methods DROP COLUMN deleted_at;
ALTER TABLE payment_methods ALTER COLUMN is_default SET DEFAULT true;
