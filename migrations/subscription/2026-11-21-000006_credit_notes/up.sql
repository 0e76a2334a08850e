-- A refund of a paid invoice is a new document, never an edit of the invoice: a credit note, numbered
-- CN-YYYYMM-NNNN without gaps like invoices (its own counter), one per refund (refund_id is unique, so a replayed
-- event cannot issue a second one).
CREATE TABLE credit_notes (
    id             uuid PRIMARY KEY,
    number         text NOT NULL UNIQUE,
    invoice_id     uuid NOT NULL REFERENCES invoices (id),
    refund_id      uuid NOT NULL UNIQUE,
    transaction_id uuid NOT NULL,
    amount         numeric(20, 4) NOT NULL CHECK (amount > 0),
    currency       char(3) NOT NULL,
    reason         text,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX credit_notes_invoice_idx ON credit_notes (invoice_id);

CREATE TABLE credit_note_number_counters (
    month       integer PRIMARY KEY,
    last_number integer NOT NULL CHECK (last_number > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER credit_note_number_counters_set_updated_at BEFORE UPDATE ON credit_note_number_counters FOR EACH ROW EXECUTE FUNCTION set_updated_at();
