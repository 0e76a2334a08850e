//! Snapshots of every webhook the payment service emits and of the main response bodies, ids and times redacted
//! (`billing_testkit::snapshot`): a change to a shape anyone reads shows as a diff to review, not by surprise.
//! `UPDATE_SNAPSHOTS=1` rewrites the files under `tests/e2e/tests/snapshots/`.

use std::path::PathBuf;

use billing_testkit::snapshot::assert_snapshot;
use diesel_async::RunQueryDsl;
use reqwest::Method;
use serde_json::{Value, json};

use crate::clocked::{Clocked, Customer, GOOD_CARD, SOFT_DECLINE};

fn snapshot(name: &str, value: &Value) {
    assert_snapshot(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots"), name, value);
}

#[derive(diesel::QueryableByName)]
struct Delivered {
    #[diesel(sql_type = diesel::sql_types::Text)]
    event_type: String,
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    payload: Value,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_and_webhooks_keep_their_shapes() {
    let w = Clocked::new().await;
    let email = "snapshot@example.com";
    let (status, registered) = w
        .call(
            &w.sub,
            Method::POST,
            "/v1/auth/register",
            None,
            Some(json!({"email": email, "password": "sturdy pass 42"})),
        )
        .await;
    assert_eq!(status, 201, "{registered}");
    snapshot("register", &registered);
    let token = registered["data"]["access_token"].as_str().unwrap_or_default().to_owned();
    let (status, me) = w.sub_call(Method::GET, "/v1/auth/me", &token, None).await;
    assert_eq!(status, 200, "{me}");
    snapshot("auth_me", &me);
    let (status, plans) = w.call(&w.sub, Method::GET, "/v1/plans", None, None).await;
    assert_eq!(status, 200, "{plans}");
    snapshot("plans", &plans);

    let (status, created) =
        w.sub_call(Method::POST, "/v1/subscriptions", &token, Some(json!({"plan_id": 2, "quantity": 2}))).await;
    assert_eq!(status, 201, "{created}");
    snapshot("subscription_created", &created);
    let id = created["data"]["id"].as_str().unwrap_or_default().to_owned();
    let pay = json!({
        "invoice_id": created["data"]["invoice_id"], "amount": created["data"]["amount"], "currency": "USD",
        "card_number": GOOD_CARD, "card_expiry": "12/40", "card_cvv": "123", "cardholder_name": "Ada Lovelace",
        "save_card": true,
    });
    let (status, paid) = w.call(&w.pay, Method::POST, "/v1/payments/process", Some(&token), Some(pay)).await;
    assert_eq!(status, 201, "{paid}");
    snapshot("payment_succeeded", &paid);
    let customer = Customer {
        token: token.clone(),
        id: registered["data"]["user_id"].as_str().unwrap_or_default().to_owned(),
        email: email.to_owned(),
    };
    w.wait_status(&customer, &id, "active").await;
    let (status, subscription) = w.sub_call(Method::GET, &format!("/v1/subscriptions/{id}"), &token, None).await;
    assert_eq!(status, 200, "{subscription}");
    snapshot("subscription_active", &subscription);
    let (status, invoices) = w.sub_call(Method::GET, "/v1/invoices/me", &token, None).await;
    assert_eq!(status, 200, "{invoices}");
    snapshot("invoices", &invoices);
    let body = json!({"feature_name": "api_calls", "delta": 5});
    let (status, used) = w.sub_call(Method::POST, "/v1/usage/use", &token, Some(body)).await;
    assert_eq!(status, 200, "{used}");
    snapshot("usage_use", &used);
    let (status, limits) = w.sub_call(Method::GET, "/v1/usage/limits", &token, None).await;
    assert_eq!(status, 200, "{limits}");
    snapshot("usage_limits", &limits);

    let transaction = paid["data"]["transaction_id"].as_str().unwrap_or_default().to_owned();
    let (status, refund) = w
        .call(
            &w.pay,
            Method::POST,
            &format!("/v1/payments/{transaction}/refund"),
            Some(&w.admin),
            Some(json!({"amount": "10.00", "reason": "goodwill"})),
        )
        .await;
    assert_eq!(status, 202, "{refund}");
    snapshot("refund_accepted", &refund);

    let declined = w.customer().await;
    let (status, other) =
        w.sub_call(Method::POST, "/v1/subscriptions", &declined.token, Some(json!({"plan_id": 2}))).await;
    assert_eq!(status, 201, "{other}");
    let pay = json!({
        "invoice_id": other["data"]["invoice_id"], "amount": other["data"]["amount"], "currency": "USD",
        "card_number": SOFT_DECLINE, "card_expiry": "12/40", "card_cvv": "123", "cardholder_name": "Ada Lovelace",
    });
    let (status, refused) =
        w.call(&w.pay, Method::POST, "/v1/payments/process", Some(&declined.token), Some(pay)).await;
    assert_eq!(status, 402, "{refused}");
    snapshot("payment_declined", &refused);

    w.settle().await;
    let (status, history) = w.call(&w.pay, Method::GET, "/v1/payments/history", Some(&token), None).await;
    assert_eq!(status, 200, "{history}");
    snapshot("payment_history", &history);
    let (status, events) = w.sub_call(Method::GET, &format!("/v1/subscriptions/{id}/events"), &token, None).await;
    assert_eq!(status, 200, "{events}");
    snapshot("subscription_events", &events);
    let delivered: Vec<Delivered> = diesel::sql_query(
        "SELECT DISTINCT ON (event_type) event_type, payload FROM webhook_deliveries WHERE delivered \
         ORDER BY event_type, id",
    )
    .load(&mut w.pay_db().await)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let types: Vec<&str> = delivered.iter().map(|d| d.event_type.as_str()).collect();
    assert_eq!(types, ["payment.failed", "payment.succeeded", "refund.succeeded"], "every event type was sent");
    for d in &delivered {
        snapshot(&format!("webhook_{}", d.event_type), &d.payload);
    }
}
