//! The foundation every service stands on: its migrations and its health checks against real dependencies.

use billing_config::ServiceKind;
use billing_testkit::MigrationSet;
use payment_service::{MIGRATIONS, PaymentService};

const SET: MigrationSet = MigrationSet { service: ServiceKind::Payment, embedded: || MIGRATIONS };

#[tokio::test]
async fn migrations_run_up_down_and_up_again() {
    billing_testkit::assert_migrations_round_trip(SET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detailed_health_follows_postgres_and_redis() {
    let gateway = billing_testkit::Gateway::start();
    billing_testkit::assert_health_follows_its_dependencies::<PaymentService>(SET, &[gateway.setting()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detailed_health_reports_the_gateway_and_turns_503_while_it_is_down() {
    let gateway = billing_testkit::Gateway::start();
    let app = billing_testkit::TestApp::spawn_with::<PaymentService>(SET, &[gateway.setting()]).await;
    let detailed = || async {
        let res = app.get("/v1/health/detailed").await;
        (res.status().as_u16(), res.json::<serde_json::Value>().await.unwrap_or_default())
    };
    let (status, body) = detailed().await;
    assert_eq!((status, body["checks"]["gateway"]["status"].as_str()), (200, Some("healthy")), "{body}");
    gateway.running.stop().await;
    let (status, body) = detailed().await;
    assert_eq!((status, body["checks"]["gateway"]["status"].as_str()), (503, Some("unhealthy")), "{body}");
    assert_eq!(body["checks"]["database"]["status"], "healthy");
}

#[tokio::test]
async fn the_openapi_document_is_consistent_and_lists_every_public_route() {
    let app = billing_testkit::TestApp::spawn::<PaymentService>(SET).await;
    let doc: serde_json::Value = app.get("/openapi.json").await.json().await.unwrap_or_default();
    billing_testkit::assert_openapi_is_consistent(
        &doc,
        &[
            ("post", "/v1/payments/process"),
            ("post", "/v1/payments/{id}/refund"),
            ("get", "/v1/payments/history"),
            ("get", "/v1/payments/{id}"),
            ("post", "/v1/payment-methods"),
            ("get", "/v1/payment-methods"),
            ("delete", "/v1/payment-methods/{id}"),
            ("post", "/v1/payment-methods/{id}/default"),
            ("post", "/v1/webhooks/gateway"),
            ("get", "/v1/admin/webhooks"),
            ("post", "/v1/admin/webhooks/{id}/redeliver"),
            ("get", "/v1/health"),
            ("get", "/v1/health/detailed"),
        ],
    );
}
