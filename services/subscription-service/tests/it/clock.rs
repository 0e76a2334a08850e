//! The test clock: advanced through the admin API, shared by every process of the environment, used by the
//! service's decisions, and absent unless configured.

use crate::common;

use std::time::Duration;

use billing_testkit::{TestApp, poll_until};
use common::SET;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::{Value, json};
use subscription_service::SubscriptionService;

async fn admin_token(app: &TestApp) -> String {
    let mut conn = AsyncPgConnection::establish(&app.db.url).await.unwrap_or_else(|e| panic!("{e}"));
    subscription_service::services::seed::seed_catalog(&mut conn).await.unwrap_or_else(|e| panic!("{e}"));
    subscription_service::services::seed::ensure_admin(&mut conn, "clock@example.com", "clock pass 123")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let res: Value = app
        .post_json("/v1/auth/login", &json!({"email": "clock@example.com", "password": "clock pass 123"}))
        .await
        .json()
        .await
        .unwrap_or_default();
    res["data"]["access_token"].as_str().unwrap_or_default().to_owned()
}

async fn call(app: &TestApp, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    app.api().send(method, path, Some(token), body).await.pair()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_clock_moves_forward_for_every_process_and_drives_decisions() {
    let app = TestApp::spawn_with::<SubscriptionService>(SET, &[("TEST_CLOCK", "true".to_owned())]).await;
    let admin = admin_token(&app).await;
    let (status, clock) = call(&app, reqwest::Method::GET, "/v1/admin/clock", &admin, None).await;
    assert_eq!((status, clock["data"]["offset_seconds"].as_i64()), (200, Some(0)));

    let (status, moved) =
        call(&app, reqwest::Method::POST, "/v1/admin/clock", &admin, Some(json!({"seconds": 86_400 * 40}))).await;
    assert_eq!((status, moved["data"]["offset_seconds"].as_i64()), (200, Some(86_400 * 40)), "{moved}");

    // A second process of the same environment (same Redis prefix) sees the same time.
    let other = TestApp::spawn_with::<SubscriptionService>(
        SET,
        &[("TEST_CLOCK", "true".to_owned()), ("REDIS_KEY_PREFIX", app.redis.prefix.clone())],
    )
    .await;
    let other_admin = admin_token(&other).await;
    poll_until(Duration::from_secs(5), "the other process to see the offset", || async {
        let (_, c) = call(&other, reqwest::Method::GET, "/v1/admin/clock", &other_admin, None).await;
        (c["data"]["offset_seconds"].as_i64() == Some(86_400 * 40)).then_some(())
    })
    .await;

    // Decisions use the moved clock: a trial starts 40 days from the machine's now.
    let email = format!("t{}@example.com", uuid::Uuid::new_v4().simple());
    let reg: Value = app
        .post_json("/v1/auth/register", &json!({"email": email, "password": "sturdy pass 42"}))
        .await
        .json()
        .await
        .unwrap_or_default();
    let token = reg["data"]["access_token"].as_str().unwrap_or_default().to_owned();
    let (_, trial) =
        call(&app, reqwest::Method::POST, "/v1/subscriptions/trial", &token, Some(json!({"trial_plan_id": 1}))).await;
    let start = chrono::DateTime::parse_from_rfc3339(trial["data"]["start_date"].as_str().unwrap_or(""))
        .map(|d| d.with_timezone(&chrono::Utc));
    let ahead = start.map(|s| (s - chrono::Utc::now()).num_days()).unwrap_or(0);
    assert!((39..=40).contains(&ahead), "the trial started {ahead} days ahead");

    let (status, _) = call(&app, reqwest::Method::POST, "/v1/admin/clock", &token, Some(json!({"seconds": 60}))).await;
    assert_eq!(status, 403, "administrators only");
    for bad in [json!({"seconds": 0}), json!({"seconds": -5}), json!({"seconds": 86_400 * 401}), json!({"days": 1})] {
        assert_eq!(
            call(&app, reqwest::Method::POST, "/v1/admin/clock", &admin, Some(bad.clone())).await.0,
            422,
            "{bad}"
        );
    }
}

#[tokio::test]
async fn without_the_test_clock_there_is_no_clock_route() {
    let app = TestApp::spawn::<SubscriptionService>(SET).await;
    let admin = admin_token(&app).await;
    let (status, body) =
        call(&app, reqwest::Method::POST, "/v1/admin/clock", &admin, Some(json!({"seconds": 60}))).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
}
