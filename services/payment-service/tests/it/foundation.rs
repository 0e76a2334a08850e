//! The foundation every service stands on: its migrations and its health checks against real dependencies.

use billing_config::ServiceKind;
use billing_domain::TransactionId;
use billing_testkit::{MigrationSet, TestDb};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use payment_service::db::{self, schema::transactions};
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

/// How many statements beginning with `prefix` this connection keeps prepared.
async fn kept_prepared(conn: &mut AsyncPgConnection, prefix: &str) -> i64 {
    #[derive(QueryableByName)]
    struct Kept {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let kept: Kept =
        diesel::sql_query("SELECT count(*) AS n FROM pg_prepared_statements WHERE starts_with(statement, $1)")
            .bind::<Text, _>(prefix)
            .get_result(conn)
            .await
            .unwrap_or_else(|e| panic!("reading pg_prepared_statements: {e}"));
    kept.n
}

#[tokio::test]
async fn a_payments_writes_stay_prepared_on_their_connection() {
    let db = TestDb::new(SET).await;
    let mut conn =
        AsyncPgConnection::establish(&db.url).await.unwrap_or_else(|e| panic!("connecting to {}: {e}", db.name));
    let id = TransactionId::new();
    // Diesel's own rule, for contrast: an UPDATE is prepared, run and closed every time.
    for _ in 0..3 {
        diesel::update(transactions::table.find(id))
            .set(transactions::decline_code.eq("x"))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(kept_prepared(&mut conn, r#"UPDATE "transactions" SET "decline_code""#).await, 0);
    // The payment path's own writes are prepared once and kept.
    for _ in 0..3 {
        db::transactions::mark_succeeded(&mut conn, id, "pi_1", None).await.unwrap_or_else(|e| panic!("{e}"));
        db::transactions::fail_if_pending(&mut conn, id, "card_declined").await.unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(kept_prepared(&mut conn, r#"UPDATE "transactions" SET "status""#).await, 2);
    // An insert of plain values diesel keeps by itself, unwrapped.
    for n in 0..3 {
        let event = format!("evt_{n}");
        db::webhooks::record_gateway_event(&mut conn, &event, "payment_intent.succeeded", &serde_json::json!({}))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(kept_prepared(&mut conn, r#"INSERT INTO "gateway_events""#).await, 1);
}
