DELETE FROM invoice_lines WHERE invoice_id IN (SELECT id FROM invoices WHERE kind = 'final');
DELETE FROM invoices WHERE kind = 'final';
ALTER TABLE invoices DROP CONSTRAINT invoices_kind_check;
ALTER TABLE invoices ADD CONSTRAINT invoices_kind_check
    CHECK (kind IN ('initial', 'renewal', 'proration', 'trial_conversion'));
ALTER TABLE invoice_lines DROP CONSTRAINT invoice_lines_usage_names_its_feature;
DELETE FROM invoice_lines WHERE kind IN ('usage', 'seats');
ALTER TABLE invoice_lines DROP COLUMN tier;
ALTER TABLE invoice_lines DROP COLUMN feature;
ALTER TABLE invoice_lines ALTER COLUMN unit_amount TYPE numeric(20, 4);
ALTER TABLE invoice_lines ALTER COLUMN quantity TYPE integer;
ALTER TABLE invoice_lines DROP CONSTRAINT invoice_lines_kind_check;
ALTER TABLE invoice_lines ADD CONSTRAINT invoice_lines_kind_check
    CHECK (kind IN ('subscription', 'proration_credit', 'proration_charge'));
