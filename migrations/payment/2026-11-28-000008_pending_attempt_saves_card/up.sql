-- Whether the customer asked to keep the card of an attempt: an attempt settled later (by the gateway's event or
-- the reconciler) keeps it then, as an answered one does at once. The card itself is at the gateway, never here.
ALTER TABLE transactions ADD COLUMN save_card boolean NOT NULL DEFAULT false;
