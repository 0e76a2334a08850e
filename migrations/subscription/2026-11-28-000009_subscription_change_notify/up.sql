-- Every committed change to a user's subscriptions is announced on `subscriptions_changed` with the user's id, so
-- each process's cache of subscriptions forgets that user (PostgreSQL delivers a notification at commit, and only
-- if the transaction commits; the same user named twice in one transaction is delivered once).
CREATE FUNCTION notify_subscription_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('subscriptions_changed', COALESCE(NEW.user_id, OLD.user_id)::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER subscriptions_changed AFTER INSERT OR UPDATE OR DELETE ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION notify_subscription_change();
