ALTER TABLE invoices DROP COLUMN IF EXISTS paid_by_transaction_id;
DROP TABLE IF EXISTS inbound_webhooks;
