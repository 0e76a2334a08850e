//! `POST /v1/webhooks/payment`: signature checks, exactly-once effects, and activation of paid subscriptions.

use crate::common;

use common::Ctx;
use reqwest::Method;
use serde_json::{Value, json};

struct Pending {
    token: String,
    trial_id: String,
    subscription_id: String,
    invoice_id: String,
}

/// A user on a trial who has created a paid Basic subscription (pending, invoice 29.99 USD open).
async fn pending(ctx: &Ctx) -> Pending {
    let token = ctx.user().await;
    let trial =
        ctx.call(Method::POST, "/v1/subscriptions/trial", Some(&token), Some(json!({"trial_plan_id": 1}))).await;
    let paid = ctx.call(Method::POST, "/v1/subscriptions", Some(&token), Some(json!({"plan_id": 2}))).await;
    Pending {
        trial_id: trial.data()["id"].as_str().unwrap_or_default().to_owned(),
        subscription_id: paid.data()["id"].as_str().unwrap_or_default().to_owned(),
        invoice_id: paid.data()["invoice_id"].as_str().unwrap_or_default().to_owned(),
        token,
    }
}

fn event(p: &Pending, event_id: &str, event_type: &str, amount: &str) -> Value {
    json!({
        "event_id": event_id, "event_type": event_type, "transaction_id": uuid::Uuid::new_v4(),
        "subscription_id": p.subscription_id, "invoice_id": p.invoice_id, "status": "succeeded",
        "amount": amount, "currency": "USD", "occurred_at": "2026-11-21T12:00:00Z",
        "metadata": {"payment_method_id": "pm_test_1"}
    })
}

fn secret(ctx: &Ctx) -> Vec<u8> {
    ctx.app.settings.signing.webhook[0].expose().as_bytes().to_vec()
}

async fn send(ctx: &Ctx, body: &[u8], timestamp: Option<i64>, signature: Option<String>) -> (u16, Value) {
    let mut req = ctx
        .app
        .client
        .post(ctx.app.url("/v1/webhooks/payment"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    req = req.header("X-Webhook-Id", "evt");
    if let Some(ts) = timestamp {
        req = req.header("X-Webhook-Timestamp", ts.to_string());
    }
    if let Some(sig) = signature {
        req = req.header("X-Webhook-Signature", sig);
    }
    let res = req.send().await.unwrap_or_else(|e| panic!("{e}"));
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or_default())
}

async fn signed(ctx: &Ctx, body: &Value) -> (u16, Value) {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    send(ctx, &bytes, Some(now), Some(billing_signing::sign(&secret(ctx), now, &bytes))).await
}

#[tokio::test]
async fn a_successful_payment_activates_the_subscription_ends_the_trial_and_pays_the_invoice_once() {
    let ctx = Ctx::new().await;
    let p = pending(&ctx).await;
    let body = event(&p, "evt_ok_1", "payment.succeeded", "29.99");
    let (status, res) = signed(&ctx, &body).await;
    assert_eq!(status, 200, "{res}");
    assert_eq!(
        (res["data"]["status"].as_str(), res["data"]["outcome"].as_str()),
        (Some("processed"), Some("subscription_activated"))
    );

    let sub = ctx.call(Method::GET, &format!("/v1/subscriptions/{}", p.subscription_id), Some(&p.token), None).await;
    assert_eq!(sub.data()["status"], "active");
    let (start, end) = (
        sub.data()["current_period_start"].as_str().unwrap_or(""),
        sub.data()["current_period_end"].as_str().unwrap_or(""),
    );
    let days = chrono::DateTime::parse_from_rfc3339(end)
        .ok()
        .zip(chrono::DateTime::parse_from_rfc3339(start).ok())
        .map(|(e, s)| (e - s).num_days());
    assert!(matches!(days, Some(28..=31)), "a monthly period: {start} .. {end}");
    let trial = ctx.call(Method::GET, &format!("/v1/subscriptions/{}", p.trial_id), Some(&p.token), None).await;
    assert_eq!(
        (trial.data()["status"].as_str(), trial.data()["cancel_reason"].as_str()),
        (Some("canceled"), Some("replaced_by_paid_subscription"))
    );
    let invoice = ctx.call(Method::GET, &format!("/v1/invoices/{}", p.invoice_id), Some(&p.token), None).await;
    assert_eq!(
        (
            invoice.data()["status"].as_str(),
            invoice.data()["amount_paid"].as_str(),
            invoice.data()["amount_due"].as_str()
        ),
        (Some("paid"), Some("29.99"), Some("0.00"))
    );

    // The same event again: 200 duplicate, nothing changes.
    let (status, res) = signed(&ctx, &body).await;
    assert_eq!((status, res["data"]["status"].as_str()), (200, Some("duplicate")));
    let events =
        ctx.call(Method::GET, &format!("/v1/subscriptions/{}/events", p.subscription_id), Some(&p.token), None).await;
    let types: Vec<&str> =
        events.data().as_array().into_iter().flatten().filter_map(|e| e["event_type"].as_str()).collect();
    assert_eq!(types, ["created", "activated"]);
    // Usage now counts against the paid plan.
    let limits = ctx.call(Method::GET, "/v1/usage/limits", Some(&p.token), None).await;
    assert_eq!(limits.data()["plan_id"], 2);
}

#[tokio::test]
async fn tampered_stale_future_unsigned_and_wrongly_signed_webhooks_are_refused() {
    let ctx = Ctx::new().await;
    let p = pending(&ctx).await;
    let bytes = serde_json::to_vec(&event(&p, "evt_bad", "payment.succeeded", "29.99")).unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    let good = billing_signing::sign(&secret(&ctx), now, &bytes);

    let mut tampered = bytes.clone();
    let pos = tampered.iter().position(|b| *b == b'9').unwrap_or(0);
    tampered[pos] = b'8';
    assert_eq!(send(&ctx, &tampered, Some(now), Some(good.clone())).await.0, 401, "one byte changed");
    let (status, body) =
        send(&ctx, &bytes, Some(now - 301), Some(billing_signing::sign(&secret(&ctx), now - 301, &bytes))).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("stale_timestamp")));
    // Some seconds past the window: the request may reach the server a second or two after `now` was read.
    assert_eq!(
        send(&ctx, &bytes, Some(now + 305), Some(billing_signing::sign(&secret(&ctx), now + 305, &bytes))).await.0,
        400,
        "future"
    );
    assert_eq!(send(&ctx, &bytes, None, None).await.0, 400, "unsigned");
    assert_eq!(send(&ctx, &bytes, Some(now), None).await.0, 400, "no signature");
    let (status, body) =
        send(&ctx, &bytes, Some(now), Some(billing_signing::sign(b"not-the-secret-not-the-secret-00", now, &bytes)))
            .await;
    assert_eq!((status, body["code"].as_str()), (401, Some("invalid_signature")));
    assert_eq!(send(&ctx, &bytes, Some(now), Some(good.to_uppercase())).await.0, 401, "upper case");

    // None of them changed anything.
    let sub = ctx.call(Method::GET, &format!("/v1/subscriptions/{}", p.subscription_id), Some(&p.token), None).await;
    assert_eq!(sub.data()["status"], "pending");
    assert_eq!(send(&ctx, &bytes, Some(now), Some(good)).await.0, 200, "the untouched original is accepted");
}

#[tokio::test]
async fn every_active_secret_verifies_during_rotation() {
    let new = "rotated-webhook-secret-new-0123456789";
    let old = "rotated-webhook-secret-old-0123456789";
    let app = billing_testkit::TestApp::spawn_with::<subscription_service::SubscriptionService>(
        common::SET,
        &[("WEBHOOK_SECRETS", format!("{new},{old}"))],
    )
    .await;
    for secret in [new, old] {
        let bytes = br#"{"not": "an event"}"#;
        let now = chrono::Utc::now().timestamp();
        let res = app
            .client
            .post(app.url("/v1/webhooks/payment"))
            .header("X-Webhook-Id", "e")
            .header("X-Webhook-Timestamp", now.to_string())
            .header("X-Webhook-Signature", billing_signing::sign(secret.as_bytes(), now, bytes))
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // The signature passed; the body is then refused as an event (422), not as a signature (401).
        assert_eq!(res.status().as_u16(), 422, "{secret}");
    }
}

#[tokio::test]
async fn events_that_cannot_apply_are_422_and_change_nothing() {
    let ctx = Ctx::new().await;
    let p = pending(&ctx).await;
    let (status, body) = signed(&ctx, &event(&p, "evt_wrong_amount", "payment.succeeded", "10.00")).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("event_not_applicable")));
    let mut unknown = event(&p, "evt_unknown", "payment.succeeded", "29.99");
    unknown["invoice_id"] = json!(uuid::Uuid::new_v4());
    unknown["subscription_id"] = Value::Null;
    assert_eq!(signed(&ctx, &unknown).await.0, 422);
    let sub = ctx.call(Method::GET, &format!("/v1/subscriptions/{}", p.subscription_id), Some(&p.token), None).await;
    assert_eq!(sub.data()["status"], "pending");
    // The refused event id was not recorded: a corrected delivery with the same id still applies.
    let (status, _) = signed(&ctx, &event(&p, "evt_wrong_amount", "payment.succeeded", "29.99")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_failed_payment_keeps_the_subscription_pending_and_records_the_attempt() {
    let ctx = Ctx::new().await;
    let p = pending(&ctx).await;
    let mut body = event(&p, "evt_failed", "payment.failed", "29.99");
    body["status"] = json!("failed");
    body["metadata"] = json!({"decline_code": "card_declined"});
    let (status, res) = signed(&ctx, &body).await;
    assert_eq!((status, res["data"]["outcome"].as_str()), (200, Some("payment_failure_recorded")));
    let sub = ctx.call(Method::GET, &format!("/v1/subscriptions/{}", p.subscription_id), Some(&p.token), None).await;
    assert_eq!(sub.data()["status"], "pending");
    let invoice = ctx.call(Method::GET, &format!("/v1/invoices/{}", p.invoice_id), Some(&p.token), None).await;
    assert_eq!(invoice.data()["status"], "open");
    let events =
        ctx.call(Method::GET, &format!("/v1/subscriptions/{}/events", p.subscription_id), Some(&p.token), None).await;
    let last = events.data().as_array().and_then(|a| a.last().cloned()).unwrap_or_default();
    assert_eq!(
        (last["event_type"].as_str(), last["data"]["decline_code"].as_str()),
        (Some("payment_failed"), Some("card_declined"))
    );
}

#[tokio::test]
async fn a_refund_of_a_paid_invoice_issues_a_numbered_credit_note_once_and_never_passes_the_payment() {
    let ctx = Ctx::new().await;
    let p = pending(&ctx).await;
    let payment = event(&p, "evt_cn_pay", "payment.succeeded", "29.99");
    assert_eq!(signed(&ctx, &payment).await.0, 200);
    let refund = |event_id: &str, refund_id: uuid::Uuid, amount: &str| {
        let mut e = event(&p, event_id, "refund.succeeded", amount);
        e["transaction_id"] = payment["transaction_id"].clone();
        e["metadata"] = json!({"refund_id": refund_id, "reason": "requested_by_customer"});
        e
    };
    let outcome = |res: &Value| res["data"]["outcome"].as_str().map(str::to_owned);

    let first = uuid::Uuid::new_v4();
    let (status, res) = signed(&ctx, &refund("evt_cn_r1", first, "10.00")).await;
    assert_eq!((status, outcome(&res)), (200, Some("credit_note_issued".to_owned())), "{res}");
    let (_, res) = signed(&ctx, &refund("evt_cn_r1", first, "10.00")).await;
    assert_eq!(res["data"]["status"], "duplicate", "{res}");
    // The same refund announced under another event id still has one note.
    let (_, res) = signed(&ctx, &refund("evt_cn_r1_again", first, "10.00")).await;
    assert_eq!(outcome(&res).as_deref(), Some("credit_note_exists"), "{res}");
    let (_, res) = signed(&ctx, &refund("evt_cn_r2", uuid::Uuid::new_v4(), "19.99")).await;
    assert_eq!(outcome(&res).as_deref(), Some("credit_note_issued"), "{res}");
    // A cent more than was paid is refused and issues nothing.
    let (status, res) = signed(&ctx, &refund("evt_cn_r3", uuid::Uuid::new_v4(), "0.01")).await;
    assert_eq!((status, res["code"].as_str()), (422, Some("event_not_applicable")), "{res}");
    // A refund of a payment that did not pay this invoice corrects nothing on it.
    let mut other = refund("evt_cn_other", uuid::Uuid::new_v4(), "5.00");
    other["transaction_id"] = json!(uuid::Uuid::new_v4());
    let (_, res) = signed(&ctx, &other).await;
    assert_eq!(outcome(&res).as_deref(), Some("refund_noted"), "{res}");

    let invoice = ctx.call(Method::GET, &format!("/v1/invoices/{}", p.invoice_id), Some(&p.token), None).await;
    let invoice = invoice.data();
    assert_eq!(
        (invoice["status"].as_str(), invoice["total"].as_str(), invoice["amount_paid"].as_str()),
        (Some("paid"), Some("29.99"), Some("29.99")),
        "the invoice itself never changes: {invoice}"
    );
    assert_eq!(invoice["amount_credited"], "29.99", "{invoice}");
    let notes = invoice["credit_notes"].as_array().cloned().unwrap_or_default();
    // Numbered in the month they were issued.
    let month = notes[0]["created_at"].as_str().map(|t| t.replace('-', "")[..6].to_owned()).unwrap_or_default();
    let numbers: Vec<_> = notes.iter().filter_map(|n| n["number"].as_str()).collect();
    assert_eq!(numbers, [format!("CN-{month}-0001"), format!("CN-{month}-0002")], "{notes:?}");
    let amounts: Vec<_> = notes.iter().filter_map(|n| n["amount"].as_str()).collect();
    assert_eq!(amounts, ["10.00", "19.99"]);
    assert_eq!(notes[0]["refund_id"], json!(first));
    assert_eq!(notes[0]["reason"], "requested_by_customer");
}
