//! Seed 003's journey, a payment while the subscription service is down, and refunds made by the worker process,
//! with every process separate.

use std::time::Duration;

use billing_testkit::poll_until;
use reqwest::Method;
use serde_json::json;

use crate::system::System;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_003_journey_with_both_services_and_workers_as_processes() {
    let sys = System::start().await;
    let (token, trial, sub, invoice) = sys.journey_to_payment().await;
    let (status, paid) = sys.pay(&token, &sub, "4242424242424242").await;
    assert_eq!((status, paid["data"]["status"].as_str()), (201, Some("success")), "{paid}");
    poll_until(Duration::from_secs(10), "the subscription to become active", || async {
        (sys.status(&token, &sub).await == "active").then_some(())
    })
    .await;
    assert_eq!(sys.status(&token, &trial).await, "canceled", "the trial is ended");
    let (_, inv) = sys.call(&sys.sub_url, Method::GET, &format!("/v1/invoices/{invoice}"), Some(&token), None).await;
    assert_eq!(inv["data"]["status"], "paid");
    let (_, history) = sys.call(&sys.pay_url, Method::GET, "/v1/payments/history", Some(&token), None).await;
    assert_eq!(
        history["data"]["items"][0]["transaction_id"].as_str().or(history["data"]["items"][0]["id"].as_str()),
        paid["data"]["transaction_id"].as_str()
    );

    // The same with the declined card: 402, and the subscription stays pending.
    let (token, _, sub, _) = sys.journey_to_payment().await;
    let (status, declined) = sys.pay(&token, &sub, "4000000000000002").await;
    assert_eq!((status, declined["code"].as_str()), (402, Some("payment_declined")));
    assert_eq!(sys.status(&token, &sub).await, "pending");

    // Neither card number nor the CVV reached a log line of any process.
    let logs = sys.logs();
    assert!(
        logs.contains("payment succeeded") || logs.contains("request completed"),
        "the processes logged (search sanity): {}",
        &logs[..logs.len().min(1500)]
    );
    for secret in ["4242424242424242", "4000000000000002", "card_cvv"] {
        assert!(!logs.contains(secret), "{secret} appears in the logs");
    }

    // A reused refresh token revokes its user's access tokens in the other service's process too.
    let body = json!({"email": "revoked@example.com", "password": "SecurePassword123!"});
    let (_, reg) = sys.call(&sys.sub_url, Method::POST, "/v1/auth/register", None, Some(body)).await;
    let first = reg["data"]["refresh_token"].clone();
    let (_, rotated) =
        sys.call(&sys.sub_url, Method::POST, "/v1/auth/refresh", None, Some(json!({"refresh_token": first}))).await;
    let access = rotated["data"]["access_token"].as_str().unwrap_or_default().to_owned();
    let sys = &sys;
    let history =
        async |token: &str| sys.call(&sys.pay_url, Method::GET, "/v1/payments/history", Some(token), None).await.0;
    assert_eq!(history(&access).await, 200);
    let (reused, _) =
        sys.call(&sys.sub_url, Method::POST, "/v1/auth/refresh", None, Some(json!({"refresh_token": first}))).await;
    assert_eq!(reused, 401);
    poll_until(Duration::from_secs(15), "the payment service to refuse the revoked token", || async {
        (history(&access).await == 401).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_made_while_the_subscription_service_is_down_applies_when_it_returns() {
    let mut sys = System::start().await;
    let (token, _, sub, _) = sys.journey_to_payment().await;
    // Hold the webhook back, pay, take the subscription service down, then let the worker try to deliver.
    sys.stop("payment-worker");
    let (status, paid) = sys.pay(&token, &sub, "4242424242424242").await;
    assert_eq!(status, 201, "{paid}");
    sys.stop("subscription-service");
    sys.spawn("payment-worker");
    let pay_db = sys.dbs.1.url.clone();
    let deliveries = |ok: bool| {
        let sql = format!("SELECT count(*) AS n FROM webhook_deliveries WHERE delivered = {ok}");
        let url = pay_db.clone();
        async move {
            use diesel_async::{AsyncConnection, RunQueryDsl};
            #[derive(diesel::QueryableByName)]
            struct N {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            let mut conn = diesel_async::AsyncPgConnection::establish(&url).await.ok()?;
            diesel::sql_query(sql).get_result::<N>(&mut conn).await.ok().map(|r| r.n)
        }
    };
    poll_until(Duration::from_secs(20), "a failed delivery attempt", || async {
        deliveries(false).await.filter(|n| *n > 0).map(|_| ())
    })
    .await;

    sys.spawn("subscription-service");
    sys.wait_healthy(&sys.sub_url.clone()).await;
    poll_until(Duration::from_secs(30), "the subscription to become active, nobody acting", || async {
        (sys.status(&token, &sub).await == "active").then_some(())
    })
    .await;
    assert_eq!(deliveries(true).await, Some(1), "delivered once it was back");
}

/// The defect that started the gateway's move to its own process: charges made by `payment-service serve`,
/// refunds run by `payment-service worker`. With the gateway remembering its charges, a partial and a full refund
/// succeed across the processes and each issues its credit note; a restart of the gateway in between loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_made_by_the_worker_process_succeed_with_their_credit_notes() {
    let mut sys = System::start().await;
    let (token, _, sub, invoice) = sys.journey_to_payment().await;
    let (status, paid) = sys.pay(&token, &sub, "4242424242424242").await;
    assert_eq!(status, 201, "{paid}");
    let tx = paid["data"]["transaction_id"].as_str().unwrap_or_default().to_owned();
    poll_until(Duration::from_secs(10), "the subscription to become active", || async {
        (sys.status(&token, &sub).await == "active").then_some(())
    })
    .await;
    let admin = sys.admin().await;
    // The gateway is restarted between the charge and the refunds: its journal keeps the charge.
    sys.stop("gateway-simulator");
    sys.spawn("gateway-simulator");
    sys.wait_healthy(&sys.gateway_url()).await;

    let path = format!("/v1/payments/{tx}/refund");
    let (status, partial) =
        sys.call(&sys.pay_url, Method::POST, &path, Some(&admin), Some(json!({"amount": "9.99"}))).await;
    assert_eq!(status, 202, "{partial}");
    let (status, rest) = sys.call(&sys.pay_url, Method::POST, &path, Some(&admin), None).await;
    assert_eq!((status, rest["data"]["amount"].as_str()), (202, Some("20.00")), "{rest}");
    let notes = poll_until(Duration::from_secs(20), "two credit notes on the invoice", || async {
        let (_, inv) =
            sys.call(&sys.sub_url, Method::GET, &format!("/v1/invoices/{invoice}"), Some(&token), None).await;
        (inv["data"]["credit_notes"].as_array().map(Vec::len) == Some(2)).then_some(inv["data"].clone())
    })
    .await;
    assert_eq!(notes["amount_credited"], "29.99", "{notes}");
    let (_, history) = sys.call(&sys.pay_url, Method::GET, "/v1/payments/history", Some(&token), None).await;
    let refunds = history["data"]["items"][0]["refunds"].as_array().cloned().unwrap_or_default();
    assert_eq!(refunds.len(), 2);
    assert!(refunds.iter().all(|r| r["status"] == "succeeded"), "{refunds:?}");
}
