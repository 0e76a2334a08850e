ALTER TABLE pending_invoice_items DROP COLUMN tier;
ALTER TABLE pending_invoice_items DROP COLUMN feature;
ALTER TABLE pending_invoice_items ALTER COLUMN unit_amount TYPE numeric(20, 4);
ALTER TABLE pending_invoice_items ALTER COLUMN quantity TYPE integer;
ALTER TABLE pending_invoice_items DROP CONSTRAINT pending_invoice_items_kind_check;
ALTER TABLE pending_invoice_items ADD CONSTRAINT pending_invoice_items_kind_check
    CHECK (kind IN ('proration_credit', 'proration_charge'));
DROP INDEX subscriptions_one_paid_per_user;
CREATE UNIQUE INDEX subscriptions_one_paid_per_user ON subscriptions (user_id)
    WHERE status IN ('pending', 'active', 'past_due');
ALTER TABLE subscriptions DROP CONSTRAINT subscriptions_paused_when;
ALTER TABLE subscriptions DROP COLUMN paused_at;
ALTER TABLE subscriptions DROP COLUMN pause_at;
ALTER TABLE subscriptions DROP CONSTRAINT subscriptions_status_check;
ALTER TABLE subscriptions ADD CONSTRAINT subscriptions_status_check
    CHECK (status IN ('pending', 'trial', 'active', 'past_due', 'canceled', 'expired'));
ALTER TABLE plans DROP CONSTRAINT plans_seat_price_whole;
ALTER TABLE plans DROP COLUMN included_seats;
ALTER TABLE plans DROP COLUMN seat_price;
