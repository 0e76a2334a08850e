-- A refund may also end the refunded subscription at once, once the money is back (the merchant's choice).
ALTER TABLE refunds ADD COLUMN cancel_subscription boolean NOT NULL DEFAULT false;
