-- Webhooks received from the payment service, one row per event id: a replay finds the row and changes nothing.
CREATE TABLE inbound_webhooks (
    event_id    text PRIMARY KEY,
    event_type  text NOT NULL,
    outcome     text NOT NULL,
    payload     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The transaction that paid an invoice (the payment service's id).
ALTER TABLE invoices ADD COLUMN paid_by_transaction_id uuid;
