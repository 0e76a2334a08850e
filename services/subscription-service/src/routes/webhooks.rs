//! `POST /v1/webhooks/payment`: signed events from the payment service.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use billing_http::signed::{PaymentEvents, Signed};
use billing_http::{ApiError, ok};
use serde_json::json;

use crate::services::settlement::{self, Applied, PaymentEvent};
use crate::state::AppState;

/// The signed event body (documentation: the handler verifies the raw bytes before reading them).
#[derive(Debug, utoipa::ToSchema)]
#[expect(dead_code, reason = "documents the body; the handler parses `PaymentEvent`")]
pub struct PaymentWebhookBody {
    #[schema(example = "evt_0192f5e06c1a")]
    event_id: String,
    #[schema(example = "payment.succeeded")]
    event_type: String,
    transaction_id: uuid::Uuid,
    subscription_id: Option<uuid::Uuid>,
    invoice_id: uuid::Uuid,
    #[schema(example = "succeeded")]
    status: String,
    #[schema(example = "29.99")]
    amount: String,
    #[schema(example = "USD")]
    currency: String,
    #[schema(example = "2026-11-21T12:00:00Z")]
    occurred_at: String,
    #[schema(value_type = Object)]
    metadata: serde_json::Value,
}

/// A payment outcome from the payment service, applied once per `event_id`.
#[utoipa::path(post, path = "/v1/webhooks/payment", tag = "webhooks", request_body = PaymentWebhookBody,
    params(
        ("X-Webhook-Id" = String, Header, description = "The event id"),
        ("X-Webhook-Timestamp" = i64, Header, description = "Unix seconds; within ±300 s"),
        ("X-Webhook-Signature" = String, Header, description = "sha256=<lower-case hex HMAC-SHA256 of \"<timestamp>.<raw body>\">")),
    responses(
        (status = 200, description = "`{status: \"processed\" | \"duplicate\"}`"),
        (status = 400, description = "Missing headers or `stale_timestamp`", body = billing_http::error::ErrorEnvelope),
        (status = 401, description = "`invalid_signature`", body = billing_http::error::ErrorEnvelope),
        (status = 409, description = "`payment_not_applied`: the payment's invoice was voided or paid by another payment; the sender refunds it", body = billing_http::error::ErrorEnvelope),
        (status = 422, description = "`event_not_applicable`: signed, but it can never apply (not retried)", body = billing_http::error::ErrorEnvelope)))]
pub async fn payment(
    state: web::Data<AppState>,
    signed: Signed<PaymentEvent, PaymentEvents>,
) -> Result<HttpResponse, ApiError> {
    let raw: serde_json::Value = billing_http::extract::parse_json(&signed.raw)?;
    let event = signed.body;
    let event_id = event.event_id.clone();
    match settlement::apply(&state, event, raw).await? {
        Ok(Applied::Duplicate) => {
            Ok(ok(json!({"status": "duplicate", "event_id": event_id}), "event already processed"))
        }
        Ok(Applied::Processed(outcome)) => {
            tracing::info!(event_id = %event_id, outcome, "payment webhook applied");
            Ok(ok(json!({"status": "processed", "event_id": event_id, "outcome": outcome}), "event processed"))
        }
        Err(not_applicable) => {
            tracing::warn!(event_id = %event_id, reason = %not_applicable, "payment webhook cannot apply");
            Err(match not_applicable.unapplied {
                // The sender took money this service cannot apply: it refunds it.
                settlement::Unapplied::Refund => {
                    ApiError::new(StatusCode::CONFLICT, "payment_not_applied", not_applicable.reason)
                }
                settlement::Unapplied::Ignore => {
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "event_not_applicable", not_applicable.reason)
                }
            })
        }
    }
}
