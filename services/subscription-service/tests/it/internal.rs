//! `/v1/internal`: signed lookups for the payment service.

use crate::common;

use common::Ctx;
use reqwest::Method;
use serde_json::{Value, json};

async fn signed_get(ctx: &Ctx, path: &str, secret: &[u8], signed_path: &str) -> (u16, Value) {
    let now = chrono::Utc::now().timestamp();
    let sig = billing_signing::sign(secret, now, format!("GET {signed_path}").as_bytes());
    let res = ctx
        .app
        .client
        .get(ctx.app.url(path))
        .header("X-Webhook-Id", "req-1")
        .header("X-Webhook-Timestamp", now.to_string())
        .header("X-Webhook-Signature", sig)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or_default())
}

fn secret(ctx: &Ctx) -> Vec<u8> {
    ctx.app.settings.signing.internal_pay_to_sub[0].expose().as_bytes().to_vec()
}

#[tokio::test]
async fn the_payment_service_can_ask_what_is_due() {
    let ctx = Ctx::new().await;
    let token = ctx.user().await;
    let paid =
        ctx.call(Method::POST, "/v1/subscriptions", Some(&token), Some(json!({"plan_id": 3, "quantity": 2}))).await;
    let (sub, invoice) = (
        paid.data()["id"].as_str().unwrap_or_default().to_owned(),
        paid.data()["invoice_id"].as_str().unwrap_or_default().to_owned(),
    );

    let path = format!("/v1/internal/invoices/{invoice}");
    let (status, body) = signed_get(&ctx, &path, &secret(&ctx), &path).await;
    assert_eq!(status, 200, "{body}");
    let d = &body["data"];
    assert_eq!(
        (d["amount_due"].as_str(), d["currency"].as_str(), d["payable"].as_bool()),
        (Some("198.00"), Some("USD"), Some(true))
    );
    assert_eq!(d["subscription_id"], json!(sub));
    let me = ctx.call(Method::GET, "/v1/auth/me", Some(&token), None).await;
    assert_eq!(d["user_id"], me.data()["id"]);

    let due_path = format!("/v1/internal/subscriptions/{sub}/due");
    let (status, body) = signed_get(&ctx, &due_path, &secret(&ctx), &due_path).await;
    assert_eq!((status, body["data"]["invoice_id"].as_str()), (200, Some(invoice.as_str())));

    let unknown = format!("/v1/internal/invoices/{}", uuid::Uuid::new_v4());
    assert_eq!(signed_get(&ctx, &unknown, &secret(&ctx), &unknown).await.0, 404);
}

#[tokio::test]
async fn internal_routes_refuse_anything_but_a_valid_service_signature() {
    let ctx = Ctx::new().await;
    let token = ctx.user().await;
    let paid = ctx.call(Method::POST, "/v1/subscriptions", Some(&token), Some(json!({"plan_id": 2}))).await;
    let path = format!("/v1/internal/invoices/{}", paid.data()["invoice_id"].as_str().unwrap_or_default());
    assert_eq!(ctx.call(Method::GET, &path, None, None).await.status, 401, "unsigned");
    assert_eq!(ctx.call(Method::GET, &path, Some(&token), None).await.status, 401, "a user's JWT");
    assert_eq!(ctx.call(Method::GET, &path, Some(&ctx.admin), None).await.status, 401, "even an admin's JWT");
    assert_eq!(signed_get(&ctx, &path, b"some-other-secret-some-other-secret", &path).await.0, 401, "wrong secret");
    let other = format!("/v1/internal/invoices/{}", uuid::Uuid::new_v4());
    assert_eq!(signed_get(&ctx, &path, &secret(&ctx), &other).await.0, 401, "a signature for another object");
    // The webhook secret is not the internal one.
    let webhook = ctx.app.settings.signing.webhook[0].expose().as_bytes().to_vec();
    assert_eq!(signed_get(&ctx, &path, &webhook, &path).await.0, 401);
    let doc: Value = ctx.app.get("/openapi.json").await.json().await.unwrap_or_default();
    assert!(
        doc["paths"].as_object().is_some_and(|p| p.keys().all(|k| !k.starts_with("/v1/internal"))),
        "internal routes are not public"
    );
}
