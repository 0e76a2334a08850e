DROP TRIGGER subscriptions_changed ON subscriptions;
DROP FUNCTION notify_subscription_change();
