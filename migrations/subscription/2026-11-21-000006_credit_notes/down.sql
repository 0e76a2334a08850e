DROP TABLE credit_note_number_counters;
DROP TABLE credit_notes;
