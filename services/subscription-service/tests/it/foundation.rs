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
    billing_testkit::assert_health_follows_its_dependencies::<SubscriptionService>(SET, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_route_without_its_database_is_503_with_retry_after_never_500() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port());
    let url = format!("postgres://billing@127.0.0.1:{}/nowhere", closed.unwrap_or(1));
    let app =
        billing_testkit::TestApp::spawn_with::<SubscriptionService>(SET, &[("SUBSCRIPTION_DATABASE_URL", url)]).await;
    let res = app.get("/v1/plans").await;
    assert_eq!(res.status().as_u16(), 503);
    assert_eq!(res.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    let body: serde_json::Value = res.json().await.unwrap_or_default();
    assert_eq!(body["code"], "service_unavailable");
}
