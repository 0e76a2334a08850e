-- Proration lines too small to charge on their own (a net below the currency's minimum charge) wait here for
-- the subscription's next invoice, the way Stripe's pending invoice items do. `invoice_id` is set, under the
-- subscription's row lock, by the transaction that puts them on an invoice.
CREATE TABLE pending_invoice_items (
    id              bigserial PRIMARY KEY,
    subscription_id uuid NOT NULL REFERENCES subscriptions (id),
    kind            text NOT NULL CHECK (kind IN ('proration_credit', 'proration_charge')),
    description     text NOT NULL,
    quantity        integer NOT NULL,
    unit_amount     numeric(20, 4) NOT NULL,
    amount          numeric(20, 4) NOT NULL,
    currency        char(3) NOT NULL,
    period_start    timestamptz,
    period_end      timestamptz,
    invoice_id      uuid REFERENCES invoices (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER pending_invoice_items_set_updated_at BEFORE UPDATE ON pending_invoice_items FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE INDEX pending_invoice_items_unbilled_idx ON pending_invoice_items (subscription_id) WHERE invoice_id IS NULL;
