DROP TABLE IF EXISTS idempotency_keys;
DROP TABLE IF EXISTS webhook_deliveries;
DROP TABLE IF EXISTS gateway_events;
DROP TABLE IF EXISTS refunds;
DROP TABLE IF EXISTS transactions;
DROP TABLE IF EXISTS payment_methods;
