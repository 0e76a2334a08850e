-- Usage billed in arrears and seats as invoice lines: a line may name its feature and tier, count more units than
-- an integer holds, and price a unit with more digits than the currency has (each line is rounded once).
ALTER TABLE invoice_lines DROP CONSTRAINT invoice_lines_kind_check;
ALTER TABLE invoice_lines ADD CONSTRAINT invoice_lines_kind_check
    CHECK (kind IN ('subscription', 'proration_credit', 'proration_charge', 'usage', 'seats'));
ALTER TABLE invoice_lines ALTER COLUMN quantity TYPE bigint;
ALTER TABLE invoice_lines ALTER COLUMN unit_amount TYPE numeric(30, 12);
ALTER TABLE invoice_lines ADD COLUMN feature text;
ALTER TABLE invoice_lines ADD COLUMN tier integer CHECK (tier >= 1);
ALTER TABLE invoice_lines ADD CONSTRAINT invoice_lines_usage_names_its_feature
    CHECK ((kind = 'usage') = (feature IS NOT NULL));

-- A subscription that ends at its period end is billed the usage of that last period on an invoice of its own.
ALTER TABLE invoices DROP CONSTRAINT invoices_kind_check;
ALTER TABLE invoices ADD CONSTRAINT invoices_kind_check
    CHECK (kind IN ('initial', 'renewal', 'proration', 'trial_conversion', 'final'));
