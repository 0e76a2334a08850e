//! Payments end to end, in process: the real subscription service, the real payment service and the real payment
//! worker (outbox relay → queue → signed webhook), with the gateway simulator on its own port.

use std::time::Duration;

use billing_runtime::Service;
use billing_testkit::{TestApp, poll_until};
use futures_util::future::join_all;
use payment_service::PaymentService;
use reqwest::Method;
use serde_json::{Value, json};
use subscription_service::SubscriptionService;

use crate::common::{PAY, SUB};

struct World {
    sub: TestApp,
    pay: TestApp,
    gateway: billing_testkit::Gateway,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl World {
    async fn new() -> Self {
        let sub = TestApp::spawn::<SubscriptionService>(SUB).await;
        let mut conn = <diesel_async::AsyncPgConnection as diesel_async::AsyncConnection>::establish(&sub.db.url)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        subscription_service::services::seed::seed_catalog(&mut conn).await.unwrap_or_else(|e| panic!("{e}"));
        let gateway = billing_testkit::Gateway::start();
        let pay = TestApp::spawn_with::<PaymentService>(
            PAY,
            &[("SUBSCRIPTION_SERVICE_URL", sub.base_url.clone()), gateway.setting()],
        )
        .await;
        gateway.send_events_to(&pay.base_url);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(PaymentService::worker(
            pay.infra.clone(),
            Box::pin(async move {
                let _ = stopped.await;
            }),
        ));
        Self { sub, pay, gateway, stop: Some(stop) }
    }

    async fn call(
        &self,
        app: &TestApp,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        key: Option<&str>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let answer = app.api().call(method, path).token(token).header("Idempotency-Key", key).json(body).send().await;
        (answer.status, answer.body, answer.headers)
    }

    /// A user on a trial with a pending Basic subscription: (token, trial id, subscription id, invoice id).
    async fn customer(&self) -> (String, String, String, String) {
        let email = format!("c{}@example.com", uuid::Uuid::new_v4().simple());
        let (_, reg, _) = self
            .call(
                &self.sub,
                Method::POST,
                "/v1/auth/register",
                None,
                Some(json!({"email": email, "password": "sturdy pass 42"})),
                None,
            )
            .await;
        let token = reg["data"]["access_token"].as_str().unwrap_or_default().to_owned();
        let (_, trial, _) = self
            .call(
                &self.sub,
                Method::POST,
                "/v1/subscriptions/trial",
                Some(&token),
                Some(json!({"trial_plan_id": 1})),
                None,
            )
            .await;
        let (_, used, _) = self
            .call(
                &self.sub,
                Method::POST,
                "/v1/usage/use",
                Some(&token),
                Some(json!({"feature_name": "api_calls"})),
                None,
            )
            .await;
        assert_eq!(used["data"]["current_usage"], 1);
        let (_, paid, _) = self
            .call(&self.sub, Method::POST, "/v1/subscriptions", Some(&token), Some(json!({"plan_id": 2})), None)
            .await;
        assert_eq!(paid["data"]["status"], "pending");
        let id = |v: &Value, k: &str| v["data"][k].as_str().unwrap_or_default().to_owned();
        (token, id(&trial, "id"), id(&paid, "id"), id(&paid, "invoice_id"))
    }

    /// An administrator's access token (refunds are theirs to make).
    async fn admin(&self) -> String {
        let mut conn = <diesel_async::AsyncPgConnection as diesel_async::AsyncConnection>::establish(&self.sub.db.url)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        subscription_service::services::seed::ensure_admin(&mut conn, "ops@example.com", "ops pass 12345")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let body = json!({"email": "ops@example.com", "password": "ops pass 12345"});
        let (status, login, _) = self.call(&self.sub, Method::POST, "/v1/auth/login", None, Some(body), None).await;
        assert_eq!(status, 200, "{login}");
        login["data"]["access_token"].as_str().unwrap_or_default().to_owned()
    }

    /// `POST /v1/payments/process` on the payment service.
    async fn process(
        &self,
        token: Option<&str>,
        body: Value,
        key: Option<&str>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        self.call(&self.pay, Method::POST, "/v1/payments/process", token, Some(body), key).await
    }

    async fn status(&self, token: &str, sub: &str) -> String {
        let (_, body, _) =
            self.call(&self.sub, Method::GET, &format!("/v1/subscriptions/{sub}"), Some(token), None, None).await;
        body["data"]["status"].as_str().unwrap_or_default().to_owned()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn payment(sub: &str, card: &str, amount: Value) -> Value {
    json!({"subscription_id": sub, "amount": amount, "currency": "USD", "card_number": card, "card_expiry": "12/30", "card_cvv": "123", "cardholder_name": "Ada Lovelace"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paying_with_a_good_card_activates_the_subscription_within_seconds() {
    let w = World::new().await;
    let (token, trial, sub, invoice) = w.customer().await;
    let (status, body, _) =
        w.process(Some(&token), payment(&sub, "4242424242424242", json!(29.99)), Some("pay-1")).await;
    assert_eq!(status, 201, "{body}");
    let d = &body["data"];
    assert_eq!(
        (d["status"].as_str(), d["amount"].as_str(), d["currency"].as_str()),
        (Some("success"), Some("29.99"), Some("USD"))
    );
    assert_eq!((d["card"]["brand"].as_str(), d["card"]["last4"].as_str()), (Some("visa"), Some("4242")));
    assert!(d["gateway_reference"].as_str().is_some_and(|r| r.starts_with("pi_")), "the payment intent: {d}");

    poll_until(Duration::from_secs(15), "the subscription to become active", || async {
        (w.status(&token, &sub).await == "active").then_some(())
    })
    .await;
    assert_eq!(w.status(&token, &trial).await, "canceled", "the trial is ended");
    let (_, inv, _) = w.call(&w.sub, Method::GET, &format!("/v1/invoices/{invoice}"), Some(&token), None, None).await;
    assert_eq!(inv["data"]["status"], "paid");
    // The paid first invoice, and its line, carry the period they pay for: the subscription's first period.
    let (_, active, _) =
        w.call(&w.sub, Method::GET, &format!("/v1/subscriptions/{sub}"), Some(&token), None, None).await;
    let period = (&active["data"]["current_period_start"], &active["data"]["current_period_end"]);
    assert!(period.0.is_string() && period.1.is_string(), "{active}");
    assert_eq!((&inv["data"]["period_start"], &inv["data"]["period_end"]), period, "{inv}");
    let line = &inv["data"]["lines"][0];
    assert_eq!((&line["period_start"], &line["period_end"]), period, "{inv}");
    let (_, history, _) = w.call(&w.pay, Method::GET, "/v1/payments/history", Some(&token), None, None).await;
    let items = history["data"]["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1);
    // One word for the status and one shape for the card, in every answer about the payment.
    assert_eq!(
        (items[0]["status"].as_str(), items[0]["invoice_id"].as_str()),
        (Some("success"), Some(invoice.as_str()))
    );
    assert_eq!(items[0]["card"], d["card"], "{}", items[0]);
    let tx = d["transaction_id"].as_str().unwrap_or_default();
    let (status, one, _) = w.call(&w.pay, Method::GET, &format!("/v1/payments/{tx}"), Some(&token), None, None).await;
    assert_eq!((status, one["data"]["status"].as_str()), (200, Some("success")));
    assert_eq!(one["data"]["card"], json!({"brand": "visa", "last4": "4242"}));

    // Paying again, by the subscription (now active) or by the invoice (now paid): 409, not 404.
    let mut by_invoice = payment(&sub, "4242424242424242", json!("29.99"));
    by_invoice["invoice_id"] = json!(invoice);
    by_invoice.as_object_mut().map(|b| b.remove("subscription_id"));
    for body in [payment(&sub, "4242424242424242", json!("29.99")), by_invoice] {
        let (status, again, _) = w.process(Some(&token), body, None).await;
        assert_eq!((status, again["code"].as_str()), (409, Some("invoice_not_payable")), "{again}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_card_is_402_and_the_subscription_stays_pending() {
    let w = World::new().await;
    let (token, _, sub, _) = w.customer().await;
    let (status, body, _) = w.process(Some(&token), payment(&sub, "4000000000000002", json!("29.99")), None).await;
    assert_eq!((status, body["code"].as_str()), (402, Some("payment_declined")), "{body}");
    assert_eq!(body["details"]["decline_code"], "card_declined");
    let tx = body["details"]["transaction_id"].as_str().unwrap_or_default().to_owned();
    // The failure reaches the subscription service; the subscription stays pending.
    let events_path = format!("/v1/subscriptions/{sub}/events");
    poll_until(Duration::from_secs(15), "the failure to be recorded", || async {
        let (_, events, _) = w.call(&w.sub, Method::GET, &events_path, Some(&token), None, None).await;
        events["data"].as_array().is_some_and(|a| a.iter().any(|e| e["event_type"] == "payment_failed")).then_some(())
    })
    .await;
    assert_eq!(w.status(&token, &sub).await, "pending");
    let (_, one, _) = w.call(&w.pay, Method::GET, &format!("/v1/payments/{tx}"), Some(&token), None, None).await;
    assert_eq!(
        (one["data"]["status"].as_str(), one["data"]["decline_code"].as_str()),
        (Some("failed"), Some("card_declined"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_requests_with_one_idempotency_key_charge_once() {
    let w = World::new().await;
    let (token, _, sub, _) = w.customer().await;
    let gateway = &w.gateway.running.simulator;
    let before = gateway.charges_made();
    let body = payment(&sub, "4242424242424242", json!("29.99"));
    let answers = join_all((0..50).map(|_| w.process(Some(&token), body.clone(), Some("same-key")))).await;
    let created: Vec<&(u16, Value, _)> = answers.iter().filter(|a| a.0 == 201).collect();
    let in_use = answers.iter().filter(|a| a.0 == 409 && a.1["code"] == "idempotency_key_in_use").count();
    assert_eq!(
        created.len() + in_use,
        50,
        "only replays or in-use answers: {:?}",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    assert!(!created.is_empty());
    let first_tx = &created[0].1["data"]["transaction_id"];
    assert!(created.iter().all(|a| &a.1["data"]["transaction_id"] == first_tx), "every 201 is the same payment");
    // Answers are listed in request order, not in the order they were made: exactly one 201 is the original.
    let originals = created.iter().filter(|a| a.2.get("idempotent-replayed").is_none()).count();
    assert_eq!(originals, 1, "one original answer, the other 201s replays");
    assert_eq!(gateway.charges_made() - before, 1, "one gateway charge");
    let (_, history, _) = w.call(&w.pay, Method::GET, "/v1/payments/history", Some(&token), None, None).await;
    assert_eq!(history["data"]["items"].as_array().map(Vec::len), Some(1), "one transaction");
    // After it settled, the key replays the first answer byte for byte; another body is refused.
    let (status, replay, headers) = w.process(Some(&token), body, Some("same-key")).await;
    assert_eq!((status, headers.get("idempotent-replayed").and_then(|v| v.to_str().ok())), (201, Some("true")));
    assert_eq!(&replay["data"]["transaction_id"], first_tx);
    let (status, reused, _) =
        w.process(Some(&token), payment(&sub, "5555555555554444", json!("29.99")), Some("same-key")).await;
    assert_eq!((status, reused["code"].as_str()), (422, Some("idempotency_key_reused")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_payments_are_precise_4xx_and_charge_nothing() {
    let w = World::new().await;
    let (token, _, sub, _) = w.customer().await;
    let gateway = &w.gateway.running.simulator;
    let before = gateway.charges_made();
    let cases = [
        (payment(&sub, "4242424242424241", json!("29.99")), 422, "validation_failed", Some("card_number")),
        (
            json!({"subscription_id": sub, "amount": "29.99", "currency": "USD", "card_number": "4242424242424242", "card_expiry": "01/20", "card_cvv": "1", "cardholder_name": ""}),
            422,
            "validation_failed",
            Some("card_expiry"),
        ),
        (payment(&sub, "4242424242424242", json!("10.00")), 422, "amount_mismatch", None),
        (payment(&sub, "4242424242424242", json!("0.10")), 422, "validation_failed", Some("amount")),
        (payment(&sub, "4242424242424242", json!("29.999")), 422, "validation_failed", Some("amount")),
        (
            json!({"subscription_id": sub, "amount": "29.99", "currency": "EUR", "card_number": "4242424242424242", "card_expiry": "12/30", "card_cvv": "123", "cardholder_name": "A"}),
            422,
            "amount_mismatch",
            None,
        ),
        (
            json!({"subscription_id": sub, "amount": "29.99", "currency": "XXX", "card_number": "4242424242424242", "card_expiry": "12/30", "card_cvv": "123", "cardholder_name": "A"}),
            422,
            "validation_failed",
            Some("currency"),
        ),
        (
            payment(&uuid::Uuid::new_v4().to_string(), "4242424242424242", json!("29.99")),
            404,
            "subscription_not_found",
            None,
        ),
        (
            json!({"subscription_id": sub, "amount": 29.99, "currency": "USD", "card_number": 4242424242424242_u64, "card_expiry": "12/30", "card_cvv": 123, "cardholder_name": "A", "status": "paid"}),
            422,
            "validation_failed",
            Some("status"),
        ),
    ];
    for (body, status, code, field) in cases {
        let (got, res, _) = w.process(Some(&token), body.clone(), None).await;
        assert_eq!((got, res["code"].as_str()), (status, Some(code)), "{body}: {res}");
        if let Some(field) = field {
            assert!(res["details"]["fields"][field].is_string(), "{field} not named: {res}");
        }
        assert!(!res.to_string().contains("4242424242424242"), "an error echoed the card number: {res}");
    }
    // Another user's subscription does not exist for this caller.
    let (stranger, _, _, _) = w.customer().await;
    let (status, _, _) = w.process(Some(&stranger), payment(&sub, "4242424242424242", json!("29.99")), None).await;
    assert_eq!(status, 404);
    assert_eq!(gateway.charges_made(), before, "nothing was charged");
    assert_eq!(w.process(None, payment(&sub, "4242424242424242", json!("29.99")), None).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_card_number_and_cvv_are_in_no_table_and_no_redis_key() {
    let w = World::new().await;
    let (token, _, sub, _) = w.customer().await;
    let mut body = payment(&sub, "4242424242424242", json!("29.99"));
    body["card_cvv"] = json!("987");
    let (status, _, _) = w.process(Some(&token), body, Some("dump-key")).await;
    assert_eq!(status, 201);
    poll_until(Duration::from_secs(15), "the webhook", || async {
        (w.status(&token, &sub).await == "active").then_some(())
    })
    .await;
    for (url, holds_last4) in [(&w.pay.db.url, true), (&w.sub.db.url, false)] {
        let dump = std::process::Command::new(pg_dump())
            .args(["--data-only", "--no-owner", url])
            .output()
            .unwrap_or_else(|e| panic!("pg_dump: {e}"));
        assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
        let text = String::from_utf8_lossy(&dump.stdout);
        if holds_last4 {
            assert!(text.contains("4242"), "the payment dump has the last 4 (the search works)");
        }
        assert!(!text.contains("4242424242424242"), "the card number is stored in {url}");
        assert!(!text.contains("\"987\"") && !text.contains("card_cvv"), "the CVV is stored in {url}");
    }
    for app in [&w.pay, &w.sub] {
        let client = redis::Client::open(app.redis.url()).unwrap_or_else(|e| panic!("{e}"));
        let mut conn = client.get_multiplexed_async_connection().await.unwrap_or_else(|e| panic!("{e}"));
        let keys: Vec<String> =
            redis::cmd("KEYS").arg(format!("{}*", app.redis.prefix)).query_async(&mut conn).await.unwrap_or_default();
        for key in keys {
            let dumped: Option<Vec<u8>> = redis::cmd("DUMP").arg(&key).query_async(&mut conn).await.unwrap_or(None);
            let text = String::from_utf8_lossy(&dumped.unwrap_or_default()).to_string();
            assert!(!text.contains("4242424242424242"), "the card number is in Redis key {key}");
        }
    }
}

fn pg_dump() -> String {
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|dirs| dirs.flatten().map(|d| d.path().join("bin/pg_dump")).find(|p| p.exists()))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "pg_dump".to_owned())
}

async fn refund_statuses(w: &World) -> Vec<(String, String)> {
    use diesel_async::{AsyncConnection, RunQueryDsl};
    #[derive(diesel::QueryableByName)]
    struct R {
        #[diesel(sql_type = diesel::sql_types::Text)]
        amount: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        status: String,
    }
    let mut conn = diesel_async::AsyncPgConnection::establish(&w.pay.db.url).await.unwrap_or_else(|e| panic!("{e}"));
    diesel::sql_query("SELECT amount::text AS amount, status FROM refunds ORDER BY created_at")
        .load::<R>(&mut conn)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| (r.amount, r.status))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_are_processed_and_never_pass_the_captured_amount() {
    let w = World::new().await;
    let (token, _, sub, _) = w.customer().await;
    let (status, paid, _) = w.process(Some(&token), payment(&sub, "4242424242424242", json!("29.99")), None).await;
    assert_eq!(status, 201, "{paid}");
    let tx = paid["data"]["transaction_id"].as_str().unwrap_or_default().to_owned();
    let path = format!("/v1/payments/{tx}/refund");
    let admin = w.admin().await;

    let (status, body, _) = w
        .call(
            &w.pay,
            Method::POST,
            &path,
            Some(&admin),
            Some(json!({"amount": "10.00", "reason": "requested_by_customer"})),
            Some("refund-1"),
        )
        .await;
    assert_eq!(
        (status, body["data"]["status"].as_str(), body["data"]["amount"].as_str()),
        (202, Some("pending"), Some("10.00")),
        "{body}"
    );
    poll_until(Duration::from_secs(15), "the refund to be processed", || async {
        (refund_statuses(&w).await == [("10.0000".to_owned(), "succeeded".to_owned())]).then_some(())
    })
    .await;
    let (status, over, _) =
        w.call(&w.pay, Method::POST, &path, Some(&admin), Some(json!({"amount": "25.00"})), None).await;
    assert_eq!((status, over["code"].as_str()), (409, Some("refund_not_allowed")));

    // Ten concurrent refunds of 5.00 against the 19.99 left: exactly three fit.
    let answers =
        join_all((0..10).map(|_| w.call(&w.pay, Method::POST, &path, Some(&admin), Some(json!({"amount": 5})), None)))
            .await;
    let accepted = answers.iter().filter(|a| a.0 == 202).count();
    let refused = answers.iter().filter(|a| a.0 == 409).count();
    assert_eq!((accepted, refused), (3, 7), "{:?}", answers.iter().map(|a| a.0).collect::<Vec<_>>());
    // The rest (4.99) in one go, then nothing is left.
    let (status, rest, _) = w.call(&w.pay, Method::POST, &path, Some(&admin), None, None).await;
    assert_eq!((status, rest["data"]["amount"].as_str()), (202, Some("4.99")));
    assert_eq!(w.call(&w.pay, Method::POST, &path, Some(&admin), None, None).await.0, 409, "fully refunded");
    poll_until(Duration::from_secs(15), "every refund to be processed", || async {
        let all = refund_statuses(&w).await;
        (all.len() == 5 && all.iter().all(|(_, s)| s == "succeeded")).then_some(())
    })
    .await;
    let total: rust_decimal::Decimal =
        refund_statuses(&w).await.iter().map(|(a, _)| a.parse::<rust_decimal::Decimal>().unwrap_or_default()).sum();
    assert_eq!(total, rust_decimal::Decimal::new(2999, 2), "refunds total {total}, the charge 29.99");
    // The history shows the payment with its refunds.
    let (_, history, _) = w.call(&w.pay, Method::GET, "/v1/payments/history", Some(&token), None, None).await;
    let refunds = history["data"]["items"][0]["refunds"].as_array().cloned().unwrap_or_default();
    assert_eq!(refunds.len(), 5);
    assert!(refunds.iter().all(|r| r["status"] == "succeeded"));
    // The subscription service issued a credit note for each refund, against the invoice the payment paid.
    let invoice = history["data"]["items"][0]["invoice_id"].as_str().unwrap_or_default().to_owned();
    let credited = poll_until(Duration::from_secs(15), "a credit note for every refund", || async {
        let (_, body, _) =
            w.call(&w.sub, Method::GET, &format!("/v1/invoices/{invoice}"), Some(&token), None, None).await;
        (body["data"]["credit_notes"].as_array().map(Vec::len) == Some(5)).then_some(body["data"].clone())
    })
    .await;
    assert_eq!((credited["amount_credited"].as_str(), credited["total"].as_str()), (Some("29.99"), Some("29.99")));
    // Notes are numbered as the refund events arrive, which need not be the order of the refunds.
    let notes = credited["credit_notes"].as_array().cloned().unwrap_or_default();
    let reasons: Vec<(&str, &str)> =
        notes.iter().filter_map(|n| Some((n["amount"].as_str()?, n["reason"].as_str()?))).collect();
    assert_eq!(reasons, [("10.00", "requested_by_customer")], "the reason is on the first refund's note: {credited}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declined_and_foreign_payments_cannot_be_refunded() {
    let w = World::new().await;
    let (token, _, sub, _) = w.customer().await;
    let (_, declined, _) = w.process(Some(&token), payment(&sub, "4000000000000002", json!("29.99")), None).await;
    let tx = declined["details"]["transaction_id"].as_str().unwrap_or_default().to_owned();
    let admin = w.admin().await;
    let (status, body, _) =
        w.call(&w.pay, Method::POST, &format!("/v1/payments/{tx}/refund"), Some(&admin), None, None).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("refund_not_allowed")));
    let (stranger, _, _, _) = w.customer().await;
    assert_eq!(
        w.call(&w.pay, Method::POST, &format!("/v1/payments/{tx}/refund"), Some(&stranger), None, None).await.0,
        404
    );
    assert_eq!(w.call(&w.pay, Method::GET, &format!("/v1/payments/{tx}"), Some(&stranger), None, None).await.0, 404);
    let bad = w
        .call(
            &w.pay,
            Method::POST,
            &format!("/v1/payments/{tx}/refund"),
            Some(&admin),
            Some(json!({"amount": "1.001"})),
            None,
        )
        .await;
    assert_eq!(bad.0, 409, "a declined payment is refused before the amount is read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_are_a_merchant_operation_and_may_end_the_subscription() {
    let w = World::new().await;
    let admin = w.admin().await;
    let (token, _, sub, _) = w.customer().await;
    let (_, paid, _) = w.process(Some(&token), payment(&sub, "4242424242424242", json!("29.99")), None).await;
    let tx = paid["data"]["transaction_id"].as_str().unwrap_or_default().to_owned();
    let path = format!("/v1/payments/{tx}/refund");
    poll_until(Duration::from_secs(15), "the subscription to be active", || async {
        (w.status(&token, &sub).await == "active").then_some(())
    })
    .await;
    // The customer may see the payment but not give it back; a stranger does not learn it exists.
    let (status, body, _) = w.call(&w.pay, Method::POST, &path, Some(&token), None, None).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")), "{body}");
    let (stranger, _, _, _) = w.customer().await;
    assert_eq!(w.call(&w.pay, Method::POST, &path, Some(&stranger), None, None).await.0, 404);
    assert!(refund_statuses(&w).await.is_empty(), "nothing was reserved");

    // A partial refund leaves access as it is.
    let (status, _, _) = w.call(&w.pay, Method::POST, &path, Some(&admin), Some(json!({"amount": "5.00"})), None).await;
    assert_eq!(status, 202);
    poll_until(Duration::from_secs(15), "the partial refund to succeed", || async {
        (refund_statuses(&w).await.iter().any(|(_, s)| s == "succeeded")).then_some(())
    })
    .await;
    assert_eq!(w.status(&token, &sub).await, "active", "a refund alone does not end the subscription");
    // The rest, with cancel_subscription: the subscription ends once the money is back.
    let body = json!({"reason": "requested_by_customer", "cancel_subscription": true});
    let (status, refund, _) = w.call(&w.pay, Method::POST, &path, Some(&admin), Some(body), None).await;
    assert_eq!((status, refund["data"]["amount"].as_str()), (202, Some("24.99")), "{refund}");
    poll_until(Duration::from_secs(15), "the subscription to be canceled by the refund", || async {
        (w.status(&token, &sub).await == "canceled").then_some(())
    })
    .await;
    let (_, events, _) =
        w.call(&w.sub, Method::GET, &format!("/v1/subscriptions/{sub}/events"), Some(&token), None, None).await;
    let canceled = events["data"].as_array().into_iter().flatten().find(|e| e["event_type"] == "canceled").cloned();
    assert!(canceled.is_some_and(|e| e["data"]["refund_id"] == refund["data"]["refund_id"]), "{events}");
    let (status, _, _) = w
        .call(&w.sub, Method::POST, "/v1/usage/use", Some(&token), Some(json!({"feature_name": "api_calls"})), None)
        .await;
    assert_eq!(status, 403, "no usage after the refund ended the subscription");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amounts_with_extra_digits_or_spaces_and_mistyped_card_fields_are_422_without_echo() {
    let w = World::new().await;
    let (token, _, sub, _) = w.customer().await;
    for amount in [json!("29.990"), json!(" 29.99"), json!("29.99 ")] {
        let (status, body, _) = w.process(Some(&token), payment(&sub, "4242424242424242", amount.clone()), None).await;
        assert_eq!(status, 422, "{amount}: {body}");
        assert!(body["details"]["fields"]["amount"].is_string(), "{amount}: {body}");
    }
    // A JSON number with a third decimal place (json! would print 29.99, so the body is written out).
    let raw = payment(&sub, "4242424242424242", json!("AMOUNT")).to_string().replace("\"AMOUNT\"", "29.990");
    let res = w.pay.client.post(w.pay.url("/v1/payments/process")).bearer_auth(&token);
    let res = res.header("content-type", "application/json").body(raw).send().await;
    assert_eq!(res.map(|r| r.status().as_u16()).ok(), Some(422), "29.990 as a JSON number");
    let mut body = payment(&sub, "4242424242424242", json!("29.99"));
    body["card_expiry"] = json!(4_242_424_242_424_242_u64);
    let (status, answer, _) = w.process(Some(&token), body, None).await;
    assert_eq!(status, 422, "{answer}");
    assert!(!answer.to_string().contains("4242424242424242"), "the card number came back: {answer}");
    assert_eq!(w.status(&token, &sub).await, "pending", "nothing was charged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subscription_service_can_charge_a_saved_card_through_the_signed_internal_route() {
    let w = World::new().await;
    let (token, _, sub, _) = w.customer().await;
    let (status, paid, _) = w.process(Some(&token), payment(&sub, "4242424242424242", json!("29.99")), None).await;
    assert_eq!(status, 201, "{paid}");
    poll_until(Duration::from_secs(15), "activation", || async {
        (w.status(&token, &sub).await == "active").then_some(())
    })
    .await;
    // An upgrade leaves an open proration invoice.
    let (status, up, _) = w
        .call(&w.sub, Method::PUT, &format!("/v1/subscriptions/{sub}"), Some(&token), Some(json!({"plan_id": 3})), None)
        .await;
    assert_eq!(status, 200, "{up}");
    let invoice = up["data"]["invoice_id"].as_str().unwrap_or_default().to_owned();
    let net = up["data"]["proration"]["net"].as_str().unwrap_or_default().to_owned();
    let (_, me, _) = w.call(&w.sub, Method::GET, "/v1/auth/me", Some(&token), None, None).await;
    let body = serde_json::to_vec(&json!({"invoice_id": invoice, "user_id": me["data"]["id"], "amount": net, "currency": "USD", "idempotency_key": format!("proration:{invoice}")}))
        .unwrap_or_default();
    let secret = w.pay.settings.signing.internal_sub_to_pay[0].expose().as_bytes().to_vec();
    let send = |body: Vec<u8>, sign: bool, bearer: Option<String>| {
        let now = chrono::Utc::now().timestamp();
        let mut req = w.pay.client.post(w.pay.url("/v1/internal/charges")).header("content-type", "application/json");
        if sign {
            req = req
                .header("X-Webhook-Id", "charge-1")
                .header("X-Webhook-Timestamp", now.to_string())
                .header("X-Webhook-Signature", billing_signing::sign(&secret, now, &body));
        }
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        async move {
            let res = req.body(body).send().await.unwrap_or_else(|e| panic!("{e}"));
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or_default())
        }
    };
    assert_eq!(send(body.clone(), false, Some(token.clone())).await.0, 401, "a user's JWT is not a service signature");
    let (status, charged) = send(body, true, None).await;
    assert_eq!(status, 201, "{charged}");
    assert_eq!(charged["data"]["amount"], json!(net));
    poll_until(Duration::from_secs(15), "the proration invoice to be paid", || async {
        let (_, inv, _) =
            w.call(&w.sub, Method::GET, &format!("/v1/invoices/{invoice}"), Some(&token), None, None).await;
        (inv["data"]["status"] == "paid").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_see_webhook_deliveries_and_can_redeliver_one() {
    let w = World::new().await;
    let mut conn = <diesel_async::AsyncPgConnection as diesel_async::AsyncConnection>::establish(&w.sub.db.url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    subscription_service::services::seed::ensure_admin(&mut conn, "ops@example.com", "ops pass 12345")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (_, login, _) = w
        .call(
            &w.sub,
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"email": "ops@example.com", "password": "ops pass 12345"})),
            None,
        )
        .await;
    let admin = login["data"]["access_token"].as_str().unwrap_or_default().to_owned();
    let (token, _, sub, _) = w.customer().await;
    w.process(Some(&token), payment(&sub, "4242424242424242", json!("29.99")), None).await;
    let deliveries = poll_until(Duration::from_secs(15), "a delivery", || async {
        let (_, list, _) = w.call(&w.pay, Method::GET, "/v1/admin/webhooks", Some(&admin), None, None).await;
        list["data"].as_array().filter(|a| !a.is_empty()).cloned()
    })
    .await;
    assert_eq!((deliveries[0]["delivered"].as_bool(), deliveries[0]["status_code"].as_i64()), (Some(true), Some(200)));
    assert_eq!(deliveries[0]["event_type"], "payment.succeeded");
    assert_eq!(w.call(&w.pay, Method::GET, "/v1/admin/webhooks", Some(&token), None, None).await.0, 403);
    let id = deliveries[0]["id"].as_i64().unwrap_or_default();
    let (status, _, _) =
        w.call(&w.pay, Method::POST, &format!("/v1/admin/webhooks/{id}/redeliver"), Some(&admin), None, None).await;
    assert_eq!(status, 202);
    poll_until(Duration::from_secs(15), "the redelivery", || async {
        let (_, list, _) = w.call(&w.pay, Method::GET, "/v1/admin/webhooks", Some(&admin), None, None).await;
        (list["data"].as_array().map(Vec::len) == Some(2) && list["data"][0]["delivered"] == true).then_some(())
    })
    .await;
    assert_eq!(w.status(&token, &sub).await, "active", "applied once");
    assert_eq!(
        w.call(&w.pay, Method::POST, "/v1/admin/webhooks/999999/redeliver", Some(&admin), None, None).await.0,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_events_are_verified_and_applied_once() {
    let w = World::new().await;
    let secret = w.pay.settings.signing.gateway_webhook[0].expose().as_bytes().to_vec();
    // Stripe's event shape and signature scheme.
    let body = serde_json::to_vec(&json!({"id": "evt_1", "object": "event", "type": "payment_intent.succeeded",
        "data": {"object": {"id": "pi_unknown", "object": "payment_intent", "status": "succeeded", "metadata": {}}}}))
    .unwrap_or_default();
    let send = |secret: Vec<u8>| {
        let now = chrono::Utc::now().timestamp();
        let req = w
            .pay
            .client
            .post(w.pay.url("/v1/webhooks/gateway"))
            .header("Stripe-Signature", billing_signing::stripe_signature(&secret, now, &body))
            .body(body.clone());
        async move {
            let res = req.send().await.unwrap_or_else(|e| panic!("{e}"));
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or_default())
        }
    };
    let (status, first) = send(secret.clone()).await;
    assert_eq!((status, first["data"]["status"].as_str()), (200, Some("recorded")));
    let (status, again) = send(secret).await;
    assert_eq!((status, again["data"]["status"].as_str()), (200, Some("duplicate")));
    assert_eq!(send(b"not-the-gateway-secret-not-the-gateway".to_vec()).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_with_a_cursor_newest_first() {
    let w = World::new().await;
    let (token, _, sub, _) = w.customer().await;
    for _ in 0..3 {
        let (status, _, _) = w.process(Some(&token), payment(&sub, "4000000000009995", json!("29.99")), None).await;
        assert_eq!(status, 402);
    }
    let (_, first, _) = w.call(&w.pay, Method::GET, "/v1/payments/history?limit=2", Some(&token), None, None).await;
    let page1 = first["data"]["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(page1.len(), 2);
    assert!(page1[0]["created_at"].as_str() >= page1[1]["created_at"].as_str(), "newest first");
    let cursor = first["data"]["next_cursor"].as_str().unwrap_or_default().to_owned();
    assert!(!cursor.is_empty());
    let (_, second, _) = w
        .call(&w.pay, Method::GET, &format!("/v1/payments/history?limit=2&cursor={cursor}"), Some(&token), None, None)
        .await;
    let page2 = second["data"]["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(page2.len(), 1);
    assert!(second["data"]["next_cursor"].is_null(), "the last page");
    let ids: std::collections::HashSet<_> = page1.iter().chain(page2.iter()).filter_map(|t| t["id"].as_str()).collect();
    assert_eq!(ids.len(), 3, "no payment twice, none skipped");
    assert_eq!(page1[0]["decline_code"], "insufficient_funds");
    assert_eq!(
        w.call(&w.pay, Method::GET, "/v1/payments/history?cursor=nonsense", Some(&token), None, None).await.0,
        422
    );
    assert_eq!(w.call(&w.pay, Method::GET, "/v1/payments/history?limit=0", Some(&token), None, None).await.0, 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_must_be_json_list_every_missing_field_and_malformed_json_is_400() {
    let w = World::new().await;
    let (token, _, sub, _) = w.customer().await;
    let raw = |content_type: &'static str, body: String| {
        let req = w.pay.client.post(w.pay.url("/v1/payments/process")).bearer_auth(&token);
        async move {
            let res = req.header("content-type", content_type).body(body).send().await;
            let res = res.unwrap_or_else(|e| panic!("{e}"));
            (res.status().as_u16(), res.json::<Value>().await.unwrap_or_default())
        }
    };
    let good = payment(&sub, "4242424242424242", json!("29.99")).to_string();
    let (status, body) = raw("text/plain", good.clone()).await;
    assert_eq!((status, body["code"].as_str()), (415, Some("unsupported_media_type")));
    let (status, body) = raw("application/x-www-form-urlencoded", "amount=29.99".into()).await;
    assert_eq!(status, 415, "{body}");
    let (status, body) = raw("application/json", json!({"subscription_id": sub}).to_string()).await;
    assert_eq!(status, 422, "{body}");
    let fields = body["details"]["fields"].as_object().cloned().unwrap_or_default();
    for field in ["amount", "currency", "card_number", "card_expiry", "card_cvv", "cardholder_name"] {
        assert_eq!(fields.get(field).and_then(Value::as_str), Some("is required"), "{field}: {body}");
    }
    for malformed in [r#"{"bogus": 1, "amount": "#, r#"{"amount": "29.99", "currency": }"#] {
        let (status, body) = raw("application/json", malformed.into()).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("malformed_json")), "{malformed}");
    }
    let saved = w.pay.client.post(w.pay.url("/v1/payment-methods")).bearer_auth(&token);
    let res = saved.header("content-type", "text/plain").body("{}").send().await;
    assert_eq!(res.map(|r| r.status().as_u16()).ok(), Some(415));
}

/// A payment in flight when the customer cancels their pending subscription at once: the charge goes through, the
/// invoice is void by then, so the subscription service refuses to apply it (409 `payment_not_applied`) and the
/// payment service gives the money back by itself. Nothing deadlocks, nothing is a 500, nothing is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_racing_an_immediate_cancellation_is_refunded_automatically() {
    let w = World::new().await;
    let (token, _, sub, invoice) = w.customer().await;
    w.gateway.running.simulator.set_latency_ms(1500);
    let pay = w.process(Some(&token), payment(&sub, "4242424242424242", json!("29.99")), None);
    let cancel = async {
        // Cancel once the charge is in flight: its attempt is recorded and the gateway is working on it.
        poll_until(Duration::from_secs(10), "the charge to be in flight", || async {
            let mut conn = <diesel_async::AsyncPgConnection as diesel_async::AsyncConnection>::establish(&w.pay.db.url)
                .await
                .ok()?;
            #[derive(diesel::QueryableByName)]
            struct N {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            let rows: Vec<N> = diesel_async::RunQueryDsl::load(
                diesel::sql_query("SELECT count(*) AS n FROM transactions WHERE status = 'pending'"),
                &mut conn,
            )
            .await
            .ok()?;
            (rows.first().map(|r| r.n) == Some(1)).then_some(())
        })
        .await;
        w.call(&w.sub, Method::DELETE, &format!("/v1/subscriptions/{sub}?immediately=true"), Some(&token), None, None)
            .await
    };
    let ((paid_status, paid, _), (cancel_status, canceled, _)) = tokio::join!(pay, cancel);
    assert_eq!(cancel_status, 200, "{canceled}");
    assert_eq!(paid_status, 201, "the charge itself went through: {paid}");
    let tx = paid["data"]["transaction_id"].as_str().unwrap_or_default().to_owned();
    poll_until(Duration::from_secs(20), "the unapplied payment to be refunded", || async {
        let (_, one, _) = w.call(&w.pay, Method::GET, &format!("/v1/payments/{tx}"), Some(&token), None, None).await;
        let refunds = one["data"]["refunds"].as_array().cloned().unwrap_or_default();
        (refunds.len() == 1 && refunds[0]["status"] == "succeeded" && refunds[0]["amount"] == "29.99").then_some(())
    })
    .await;
    assert_eq!(w.status(&token, &sub).await, "canceled");
    let (_, inv, _) = w.call(&w.sub, Method::GET, &format!("/v1/invoices/{invoice}"), Some(&token), None, None).await;
    assert_eq!(inv["data"]["status"], "void", "{inv}");
}

/// The gateway charges, then every answer is lost (a 500 after the charge, then 503s for the retries under the same
/// key): the customer is told 503, the attempt stays pending holding the invoice, and the gateway's signed event
/// settles it once, announcing the payment like any other: the subscription becomes active, charged once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charge_whose_answer_was_lost_is_settled_once_by_the_gateway_event() {
    let w = World::new().await;
    let (token, _, sub, _) = w.customer().await;
    let gateway = &w.gateway.running.simulator;
    let before = gateway.charges_made();
    // The payment method's answer, then the charge's and every retry's, are lost.
    gateway.error_after_charge_next(100);
    let (status, body, _) = w.process(Some(&token), payment(&sub, "4242424242424242", json!("29.99")), None).await;
    gateway.error_after_charge_next(0);
    assert_eq!(status, 503, "the outcome is unknown to the customer: {body}");
    poll_until(Duration::from_secs(20), "the event to settle the payment", || async {
        (w.status(&token, &sub).await == "active").then_some(())
    })
    .await;
    assert_eq!(gateway.charges_made() - before, 1, "one charge");
    let (_, history, _) = w.call(&w.pay, Method::GET, "/v1/payments/history", Some(&token), None, None).await;
    let items = history["data"]["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "{history}");
    assert_eq!(
        (items[0]["status"].as_str(), items[0]["gateway_reference"].as_str().map(|r| r.starts_with("pi_"))),
        (Some("success"), Some(true))
    );
    // The customer asked to keep the card (the default): it is kept, as when the answer is not lost.
    let (_, methods, _) = w.call(&w.pay, Method::GET, "/v1/payment-methods", Some(&token), None, None).await;
    let methods = methods["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(methods.len(), 1, "{methods:?}");
    assert_eq!(
        (methods[0]["last4"].as_str(), methods[0]["cardholder_name"].as_str()),
        (Some("4242"), Some("Ada Lovelace"))
    );
}

/// The same lost answer with no event coming (the gateway's endpoint is not set): the reconciler asks the gateway by
/// the attempt's key and settles it; an attempt the gateway never saw is closed as failed, freeing its invoice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconciler_settles_attempts_left_pending_from_what_the_gateway_knows() {
    let w = World::new().await;
    w.gateway.running.simulator.set_webhook_url("http://127.0.0.1:9/nowhere");
    let state = payment_service::build_state(&w.pay.infra).unwrap_or_else(|e| panic!("{e}"));
    let (token, _, sub, _) = w.customer().await;
    let gateway = &w.gateway.running.simulator;
    gateway.error_after_charge_next(100);
    let (status, _, _) = w.process(Some(&token), payment(&sub, "4242424242424242", json!("29.99")), None).await;
    gateway.error_after_charge_next(0);
    assert_eq!(status, 503);
    // A second customer's attempt never reaches the gateway at all (every try refused before anything happens).
    let (other, _, other_sub, _) = w.customer().await;
    gateway.fail_next(100);
    let (status, _, _) = w.process(Some(&other), payment(&other_sub, "4242424242424242", json!("29.99")), None).await;
    gateway.fail_next(0);
    assert_eq!(status, 503);
    let settled = payment_service::services::payments::reconcile_pending(&state, chrono::Duration::zero())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(settled, 2, "both attempts are settled");
    poll_until(Duration::from_secs(20), "the reconciled payment to activate the subscription", || async {
        (w.status(&token, &sub).await == "active").then_some(())
    })
    .await;
    let (_, methods, _) = w.call(&w.pay, Method::GET, "/v1/payment-methods", Some(&token), None, None).await;
    assert_eq!(methods["data"][0]["last4"], "4242", "the reconciled payment keeps its card: {methods}");
    let (_, history, _) = w.call(&w.pay, Method::GET, "/v1/payments/history", Some(&other), None, None).await;
    assert_eq!(history["data"]["items"][0]["status"], "failed", "{history}");
    // The unseen attempt no longer holds the invoice: the customer can pay it now.
    let (status, paid, _) =
        w.process(Some(&other), payment(&other_sub, "4242424242424242", json!("29.99")), None).await;
    assert_eq!(status, 201, "{paid}");
    assert_eq!(
        payment_service::services::payments::reconcile_pending(&state, chrono::Duration::zero()).await.ok(),
        Some(0),
        "nothing is left pending"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_cards_can_be_made_default_deleted_and_used_to_pay_an_open_invoice() {
    let w = World::new().await;
    let (token, _, sub, _) = w.customer().await;
    let save = |number: &'static str| {
        let body = json!({"card_number": number, "card_expiry": "12/30", "card_cvv": "123", "cardholder_name": "Ada"});
        w.call(&w.pay, Method::POST, "/v1/payment-methods", Some(&token), Some(body), None)
    };
    let (status, visa, _) = save("4242424242424242").await;
    assert_eq!(status, 201, "{visa}");
    let (status, mastercard, _) = save("5555555555554444").await;
    assert_eq!(status, 201, "{mastercard}");
    let visa_id = visa["data"]["id"].as_str().unwrap_or_default().to_owned();
    let mc_id = mastercard["data"]["id"].as_str().unwrap_or_default().to_owned();
    let list = || async {
        let (_, list, _) = w.call(&w.pay, Method::GET, "/v1/payment-methods", Some(&token), None, None).await;
        list["data"].as_array().cloned().unwrap_or_default()
    };
    let methods = list().await;
    assert_eq!(
        (methods[0]["id"].as_str(), methods[0]["default"].as_bool()),
        (Some(mc_id.as_str()), Some(true)),
        "the newest is the default"
    );

    let (status, chosen, _) =
        w.call(&w.pay, Method::POST, &format!("/v1/payment-methods/{visa_id}/default"), Some(&token), None, None).await;
    assert_eq!(status, 200, "{chosen}");
    let methods = list().await;
    assert_eq!(methods[0]["id"].as_str(), Some(visa_id.as_str()), "the chosen one is the default");
    assert_eq!(methods.iter().filter(|m| m["default"] == true).count(), 1);

    // Pay the open invoice with the saved card; card details beside it are refused.
    let pay_with = json!({"subscription_id": sub, "amount": "29.99", "currency": "USD", "payment_method_id": visa_id});
    let mut both = pay_with.clone();
    both["card_number"] = json!("4242424242424242");
    let (status, refused, _) = w.process(Some(&token), both, None).await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused["details"]["fields"]["payment_method_id"].is_string(), "{refused}");
    let (status, paid, _) = w.process(Some(&token), pay_with, None).await;
    assert_eq!((status, paid["data"]["card"]["last4"].as_str()), (201, Some("4242")), "{paid}");

    // Deleting the default hands it to the newest left; a deleted card is gone for payments and lists.
    let delete = async |id: &str| {
        w.call(&w.pay, Method::DELETE, &format!("/v1/payment-methods/{id}"), Some(&token), None, None).await.0
    };
    assert_eq!(delete(&visa_id).await, 204);
    let methods = list().await;
    assert_eq!((methods.len(), methods[0]["id"].as_str()), (1, Some(mc_id.as_str())));
    assert_eq!(delete(&visa_id).await, 404, "already deleted");
    let (stranger, _, stranger_sub, _) = w.customer().await;
    let (status, _, _) =
        w.call(&w.pay, Method::DELETE, &format!("/v1/payment-methods/{mc_id}"), Some(&stranger), None, None).await;
    assert_eq!(status, 404, "another user's card does not exist for them");
    let theirs =
        json!({"subscription_id": stranger_sub, "amount": "29.99", "currency": "USD", "payment_method_id": mc_id});
    let (status, _, _) = w.process(Some(&stranger), theirs, None).await;
    assert_eq!(status, 422, "nor can they pay with it");
    // The payment made with the deleted card still shows it.
    let (_, history, _) = w.call(&w.pay, Method::GET, "/v1/payments/history", Some(&token), None, None).await;
    assert_eq!(history["data"]["items"][0]["card"]["last4"], "4242");
}
