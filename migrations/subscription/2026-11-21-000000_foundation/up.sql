-- Foundation shared by every table of this database.
CREATE EXTENSION IF NOT EXISTS citext;

-- Every table has created_at/updated_at; this trigger keeps updated_at honest.
CREATE OR REPLACE FUNCTION set_updated_at() RETURNS trigger AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
