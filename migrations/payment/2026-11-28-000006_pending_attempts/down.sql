DROP INDEX transactions_pending_created_at;
ALTER TABLE transactions DROP COLUMN off_session;
