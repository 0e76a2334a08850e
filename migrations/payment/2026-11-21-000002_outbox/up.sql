-- Jobs born from a database change, written in the same transaction; the worker's relay moves them to Redis in
-- order and marks them sent. Redis down means delay, never loss.
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    queue           text NOT NULL,
    job_id          uuid NOT NULL,
    action          text NOT NULL,
    idempotency_key text NOT NULL,
    correlation_id  text,
    payload         jsonb NOT NULL,
    delay_ms        bigint NOT NULL DEFAULT 0 CHECK (delay_ms >= 0),
    sent_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT outbox_job_id_key UNIQUE (job_id)
);
CREATE INDEX outbox_unsent_idx ON outbox (id) WHERE sent_at IS NULL;
CREATE TRIGGER outbox_set_updated_at BEFORE UPDATE ON outbox FOR EACH ROW EXECUTE FUNCTION set_updated_at();
