-- A plan may price seats: a base fee (`price`) plus `seat_price` for each seat above `included_seats`. Without a
-- seat price, `price` is per seat, as before.
ALTER TABLE plans ADD COLUMN seat_price numeric(20, 4) CHECK (seat_price >= 0);
ALTER TABLE plans ADD COLUMN included_seats integer CHECK (included_seats BETWEEN 0 AND 10000);
ALTER TABLE plans ADD CONSTRAINT plans_seat_price_whole
    CHECK ((seat_price IS NULL) = (included_seats IS NULL));

-- A subscription may be paused (now, or at its period end: `pause_at`) and resumed.
ALTER TABLE subscriptions DROP CONSTRAINT subscriptions_status_check;
ALTER TABLE subscriptions ADD CONSTRAINT subscriptions_status_check
    CHECK (status IN ('pending', 'trial', 'active', 'past_due', 'paused', 'canceled', 'expired'));
ALTER TABLE subscriptions ADD COLUMN pause_at timestamptz;
ALTER TABLE subscriptions ADD COLUMN paused_at timestamptz;
ALTER TABLE subscriptions ADD CONSTRAINT subscriptions_paused_when
    CHECK ((status = 'paused') = (paused_at IS NOT NULL));
-- A paused subscription is still the user's one paid subscription: resuming it needs no new one.
DROP INDEX subscriptions_one_paid_per_user;
CREATE UNIQUE INDEX subscriptions_one_paid_per_user ON subscriptions (user_id)
    WHERE status IN ('pending', 'active', 'past_due', 'paused');

-- An upgrade that restarts the period bills the usage of the part that ended; when its invoice is too small to
-- charge, those usage lines wait for the next invoice like its proration lines.
ALTER TABLE pending_invoice_items DROP CONSTRAINT pending_invoice_items_kind_check;
ALTER TABLE pending_invoice_items ADD CONSTRAINT pending_invoice_items_kind_check
    CHECK (kind IN ('proration_credit', 'proration_charge', 'usage'));
ALTER TABLE pending_invoice_items ALTER COLUMN quantity TYPE bigint;
ALTER TABLE pending_invoice_items ALTER COLUMN unit_amount TYPE numeric(30, 12);
ALTER TABLE pending_invoice_items ADD COLUMN feature text;
ALTER TABLE pending_invoice_items ADD COLUMN tier integer CHECK (tier >= 1);
