-- Payments. The card number and CVV are never stored: only the gateway's reusable token, brand, last 4 and expiry.

CREATE TABLE payment_methods (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL,
    gateway_token   text NOT NULL,
    brand           text NOT NULL,
    last4           char(4) NOT NULL CHECK (last4 ~ '^[0-9]{4}$'),
    exp_month       integer NOT NULL CHECK (exp_month BETWEEN 1 AND 12),
    exp_year        integer NOT NULL CHECK (exp_year BETWEEN 2000 AND 2200),
    cardholder_name text NOT NULL,
    is_default      boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT payment_methods_gateway_token_key UNIQUE (gateway_token)
);
CREATE INDEX payment_methods_user_idx ON payment_methods (user_id, created_at DESC);
CREATE TRIGGER payment_methods_set_updated_at BEFORE UPDATE ON payment_methods FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE transactions (
    id                uuid PRIMARY KEY,
    user_id           uuid NOT NULL,
    subscription_id   uuid,
    invoice_id        uuid NOT NULL,
    amount            numeric(20, 4) NOT NULL CHECK (amount > 0),
    currency          char(3) NOT NULL,
    status            text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    gateway_reference text,
    decline_code      text,
    failure_message   text,
    card_brand        text,
    card_last4        char(4),
    payment_method_id uuid REFERENCES payment_methods (id),
    idempotency_key   text NOT NULL,
    refunded_amount   numeric(20, 4) NOT NULL DEFAULT 0 CHECK (refunded_amount >= 0 AND refunded_amount <= amount),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
-- An invoice is paid by exactly one successful charge.
CREATE UNIQUE INDEX transactions_one_success_per_invoice ON transactions (invoice_id) WHERE status = 'succeeded';
-- The gateway call of a transaction is made with this key: a retry after an ambiguous result charges once.
CREATE UNIQUE INDEX transactions_idempotency_key ON transactions (idempotency_key);
CREATE INDEX transactions_user_created_idx ON transactions (user_id, created_at DESC, id DESC);
CREATE TRIGGER transactions_set_updated_at BEFORE UPDATE ON transactions FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE refunds (
    id                uuid PRIMARY KEY,
    transaction_id    uuid NOT NULL REFERENCES transactions (id),
    user_id           uuid NOT NULL,
    amount            numeric(20, 4) NOT NULL CHECK (amount > 0),
    currency          char(3) NOT NULL,
    status            text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    reason            text,
    gateway_reference text,
    failure_message   text,
    idempotency_key   text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT refunds_idempotency_key_key UNIQUE (idempotency_key)
);
CREATE INDEX refunds_transaction_idx ON refunds (transaction_id);
CREATE INDEX refunds_user_created_idx ON refunds (user_id, created_at DESC, id DESC);
CREATE TRIGGER refunds_set_updated_at BEFORE UPDATE ON refunds FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Events from the gateway, applied once each.
CREATE TABLE gateway_events (
    event_id    text PRIMARY KEY,
    event_type  text NOT NULL,
    payload     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Every attempt to deliver a webhook to the subscription service.
CREATE TABLE webhook_deliveries (
    id           bigserial PRIMARY KEY,
    event_id     text NOT NULL,
    event_type   text NOT NULL,
    target_url   text NOT NULL,
    attempt      integer NOT NULL,
    status_code  integer,
    latency_ms   integer NOT NULL,
    error        text,
    delivered    boolean NOT NULL,
    payload      jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (event_id, id);
CREATE INDEX webhook_deliveries_created_idx ON webhook_deliveries (created_at DESC, id DESC);

-- Idempotency-Key of money-moving requests: per user; the first response is stored and replayed byte for byte.
CREATE TABLE idempotency_keys (
    user_id          uuid NOT NULL,
    key              text NOT NULL,
    request_hash     bytea NOT NULL,
    status           text NOT NULL CHECK (status IN ('in_progress', 'completed')),
    response_status  integer,
    response_body    bytea,
    locked_until     timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
CREATE TRIGGER idempotency_keys_set_updated_at BEFORE UPDATE ON idempotency_keys FOR EACH ROW EXECUTE FUNCTION set_updated_at();
