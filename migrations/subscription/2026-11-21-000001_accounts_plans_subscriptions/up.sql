-- Accounts, the plan catalog, subscriptions with their event log, invoices and usage.

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    email         citext NOT NULL,
    password_hash text NOT NULL,
    first_name    text,
    last_name     text,
    role          text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_key UNIQUE (email)
);
CREATE TRIGGER users_set_updated_at BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Refresh tokens are stored hashed. A token is used once: using it rotates it (a new token in the same
-- family); presenting a rotated token again revokes the whole family.
CREATE TABLE refresh_tokens (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   uuid NOT NULL,
    token_hash  bytea NOT NULL,
    expires_at  timestamptz NOT NULL,
    rotated_at  timestamptz,
    revoked_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT refresh_tokens_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE TRIGGER refresh_tokens_set_updated_at BEFORE UPDATE ON refresh_tokens FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE plans (
    id                  serial PRIMARY KEY,
    code                text NOT NULL,
    name                text NOT NULL,
    description         text NOT NULL DEFAULT '',
    price               numeric(20, 4) NOT NULL CHECK (price >= 0),
    currency            char(3) NOT NULL,
    billing_cycle       text NOT NULL CHECK (billing_cycle IN ('monthly', 'yearly')),
    trial_period_days   integer NOT NULL DEFAULT 0 CHECK (trial_period_days BETWEEN 0 AND 365),
    is_trial_plan       boolean NOT NULL DEFAULT false,
    converts_to_plan_id integer REFERENCES plans (id),
    features            jsonb NOT NULL DEFAULT '{}'::jsonb,
    is_active           boolean NOT NULL DEFAULT true,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT plans_code_key UNIQUE (code),
    CONSTRAINT plans_trial_has_days CHECK (NOT is_trial_plan OR trial_period_days > 0)
);
CREATE TRIGGER plans_set_updated_at BEFORE UPDATE ON plans FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE subscriptions (
    id                    uuid PRIMARY KEY,
    user_id               uuid NOT NULL REFERENCES users (id),
    plan_id               integer NOT NULL REFERENCES plans (id),
    quantity              integer NOT NULL DEFAULT 1 CHECK (quantity BETWEEN 1 AND 10000),
    status                text NOT NULL CHECK (status IN ('pending', 'trial', 'active', 'past_due', 'canceled', 'expired')),
    is_trial              boolean NOT NULL DEFAULT false,
    billing_anchor        timestamptz,
    current_period_start  timestamptz,
    current_period_end    timestamptz,
    trial_start           timestamptz,
    trial_end             timestamptz,
    cancel_at_period_end  boolean NOT NULL DEFAULT false,
    canceled_at           timestamptz,
    cancel_reason         text,
    ended_at              timestamptz,
    pending_plan_id       integer REFERENCES plans (id),
    pending_quantity      integer CHECK (pending_quantity BETWEEN 1 AND 10000),
    payment_method_id     text,
    version               integer NOT NULL DEFAULT 0,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT subscriptions_period_order CHECK (current_period_end IS NULL OR current_period_end > current_period_start)
);
-- At most one paid subscription in flight (pending, active or past due) per user ...
CREATE UNIQUE INDEX subscriptions_one_paid_per_user ON subscriptions (user_id)
    WHERE status IN ('pending', 'active', 'past_due');
-- ... and at most one giving access (trial, active or past due): a pending subscription may wait beside a
-- trial (it replaces the trial when paid), but a trial never overlaps an active subscription.
CREATE UNIQUE INDEX subscriptions_one_access_per_user ON subscriptions (user_id)
    WHERE status IN ('trial', 'active', 'past_due');
-- One trial per user, ever.
CREATE UNIQUE INDEX subscriptions_one_trial_per_user ON subscriptions (user_id) WHERE is_trial;
CREATE INDEX subscriptions_user_created_idx ON subscriptions (user_id, created_at DESC);
CREATE INDEX subscriptions_period_end_idx ON subscriptions (current_period_end) WHERE status IN ('active', 'past_due', 'trial');
CREATE TRIGGER subscriptions_set_updated_at BEFORE UPDATE ON subscriptions FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Append-only history: one row per transition, written in the transition's transaction.
CREATE TABLE subscription_events (
    id              bigserial PRIMARY KEY,
    subscription_id uuid NOT NULL REFERENCES subscriptions (id),
    event_type      text NOT NULL,
    from_status     text,
    to_status       text NOT NULL,
    data            jsonb NOT NULL DEFAULT '{}'::jsonb,
    occurred_at     timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscription_events_subscription_idx ON subscription_events (subscription_id, id);

CREATE FUNCTION forbid_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER subscription_events_append_only BEFORE UPDATE OR DELETE ON subscription_events
    FOR EACH ROW EXECUTE FUNCTION forbid_change();

CREATE TABLE invoices (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id),
    subscription_id uuid REFERENCES subscriptions (id),
    number          text,
    status          text NOT NULL CHECK (status IN ('draft', 'open', 'paid', 'void', 'uncollectible')),
    kind            text NOT NULL CHECK (kind IN ('initial', 'renewal', 'proration', 'trial_conversion')),
    currency        char(3) NOT NULL,
    subtotal        numeric(20, 4) NOT NULL,
    total           numeric(20, 4) NOT NULL,
    amount_due      numeric(20, 4) NOT NULL,
    amount_paid     numeric(20, 4) NOT NULL DEFAULT 0,
    period_start    timestamptz,
    period_end      timestamptz,
    finalized_at    timestamptz,
    due_at          timestamptz,
    paid_at         timestamptz,
    voided_at       timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT invoices_number_key UNIQUE (number),
    CONSTRAINT invoices_finalized_have_numbers CHECK (status = 'draft' OR number IS NOT NULL)
);
-- One invoice per subscription and billing period for the invoices the billing cycle creates.
CREATE UNIQUE INDEX invoices_one_per_period ON invoices (subscription_id, kind, period_start)
    WHERE kind IN ('initial', 'renewal', 'trial_conversion') AND status <> 'void';
CREATE INDEX invoices_user_created_idx ON invoices (user_id, created_at DESC);
CREATE TRIGGER invoices_set_updated_at BEFORE UPDATE ON invoices FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- A paid or voided invoice never changes: corrections are new documents.
CREATE FUNCTION invoices_freeze_settled() RETURNS trigger AS $$
BEGIN
    IF OLD.status IN ('paid', 'void') THEN
        RAISE EXCEPTION 'invoice % is %, it cannot change', OLD.id, OLD.status USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER invoices_freeze_settled BEFORE UPDATE OR DELETE ON invoices FOR EACH ROW EXECUTE FUNCTION invoices_freeze_settled();

CREATE TABLE invoice_lines (
    id           bigserial PRIMARY KEY,
    invoice_id   uuid NOT NULL REFERENCES invoices (id),
    position     integer NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('subscription', 'proration_credit', 'proration_charge')),
    description  text NOT NULL,
    quantity     integer NOT NULL,
    unit_amount  numeric(20, 4) NOT NULL,
    amount       numeric(20, 4) NOT NULL,
    period_start timestamptz,
    period_end   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT invoice_lines_position_key UNIQUE (invoice_id, position)
);
CREATE TRIGGER invoice_lines_set_updated_at BEFORE UPDATE ON invoice_lines FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Gapless invoice numbers per month: the row is locked by the finalizing transaction, so numbers are handed out
-- one at a time, and a rolled-back finalization gives its number back.
CREATE TABLE invoice_number_counters (
    month       integer PRIMARY KEY,
    last_number integer NOT NULL CHECK (last_number > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER invoice_number_counters_set_updated_at BEFORE UPDATE ON invoice_number_counters FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Usage folded from Redis: the total per subscription, feature and period ...
CREATE TABLE usage_counters (
    subscription_id uuid NOT NULL REFERENCES subscriptions (id),
    feature         text NOT NULL,
    period_start    timestamptz NOT NULL,
    used            bigint NOT NULL DEFAULT 0 CHECK (used >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscription_id, feature, period_start)
);
CREATE TRIGGER usage_counters_set_updated_at BEFORE UPDATE ON usage_counters FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- ... and every accepted event, once (the event id makes folding idempotent).
CREATE TABLE usage_events (
    id              uuid PRIMARY KEY,
    subscription_id uuid NOT NULL REFERENCES subscriptions (id),
    feature         text NOT NULL,
    period_start    timestamptz NOT NULL,
    delta           bigint NOT NULL CHECK (delta > 0),
    idempotency_key text,
    recorded_at     timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- An idempotency key counts once per subscription and period (Redis keeps the key as long as the period).
CREATE UNIQUE INDEX usage_events_idempotency_key ON usage_events (subscription_id, period_start, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX usage_events_counter_idx ON usage_events (subscription_id, feature, period_start);
