DROP TABLE pending_invoice_items;
