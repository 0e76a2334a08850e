ALTER TABLE transactions DROP COLUMN save_card;
