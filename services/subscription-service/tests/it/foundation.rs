//! The foundation every service stands on: its migrations and its health checks against real dependencies.

use billing_config::ServiceKind;
use billing_testkit::MigrationSet;
use subscription_service::{MIGRATIONS, SubscriptionService};

const SET: MigrationSet = MigrationSet { service: ServiceKind::Subscription, embedded: || MIGRATIONS };

#[tokio::test]
async fn migrations_run_up_down_and_up_again() {
    billing_testkit::assert_migrations_round_trip(SET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detailed_health_follows_postgres_and_redis() {
    billing_testkit::assert_health_follows_its_dependencies::<SubscriptionService>(SET).await;
}
