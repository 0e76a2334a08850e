ALTER TABLE refunds DROP COLUMN cancel_subscription;
