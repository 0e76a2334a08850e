//! Webhook operations (administrators) and events from the payment gateway.

use actix_web::{HttpRequest, HttpResponse, web};
use billing_http::{AdminUser, ApiError, ok};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::services::operations::{self, DeliveryRow, GatewayEventOutcome};
use crate::state::AppState;

/// One attempt to deliver a webhook.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDto {
    pub id: i64,
    pub event_id: String,
    pub event_type: String,
    pub target_url: String,
    pub attempt: i32,
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    pub error: Option<String>,
    pub delivered: bool,
    #[schema(value_type = String)]
    pub created_at: DateTime<Utc>,
}

impl From<DeliveryRow> for DeliveryDto {
    fn from(d: DeliveryRow) -> Self {
        Self {
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type,
            target_url: d.target_url,
            attempt: d.attempt,
            status_code: d.status_code,
            latency_ms: d.latency_ms,
            error: d.error,
            delivered: d.delivered,
            created_at: d.created_at,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub limit: Option<i64>,
}

/// Recent webhook delivery attempts, newest first.
#[utoipa::path(get, path = "/v1/admin/webhooks", tag = "operations", security(("bearer" = [])),
    params(("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "1–200, default 50")),
    responses((status = 200, description = "Attempts", body = Vec<DeliveryDto>), (status = 403, description = "Not an administrator")))]
pub async fn list(
    state: web::Data<AppState>,
    _admin: AdminUser,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid_field("limit", "from 1 to 200"));
    }
    let rows: Vec<DeliveryDto> =
        operations::deliveries(&state, limit).await?.into_iter().map(DeliveryDto::from).collect();
    Ok(ok(rows, "webhook deliveries"))
}

/// Sends the event of a delivery again (the receiver applies an event once, however often it arrives).
#[utoipa::path(post, path = "/v1/admin/webhooks/{id}/redeliver", tag = "operations", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Delivery id")),
    responses((status = 202, description = "Queued"), (status = 404, description = "No such delivery")))]
pub async fn redeliver(
    state: web::Data<AppState>,
    _admin: AdminUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let event_id = operations::redeliver(&state, id.into_inner())
        .await?
        .ok_or_else(|| ApiError::not_found("delivery_not_found", "no such delivery"))?;
    let mut res = ok(json!({"event_id": event_id, "status": "queued"}), "redelivery queued");
    *res.status_mut() = actix_web::http::StatusCode::ACCEPTED;
    Ok(res)
}

/// An event from the gateway, in Stripe's shape: `{id, type, data: {object}}`.
#[derive(Debug, Deserialize)]
pub struct GatewayEvent {
    pub id: String,
    /// `payment_intent.succeeded`, `payment_intent.payment_failed`, `refund.created`, `refund.updated`,
    /// `refund.failed`; other types are recorded and ignored.
    #[serde(rename = "type")]
    pub kind: String,
    pub data: GatewayEventData,
}

/// The object an event is about.
#[derive(Debug, Deserialize)]
pub struct GatewayEventData {
    pub object: Value,
}

/// Events from the payment gateway, signed in Stripe's scheme (`Stripe-Signature: t=…,v1=…`) with the gateway
/// secret, applied once per gateway event id. They settle charges and refunds still pending here (after an answer
/// that was lost), matched by the gateway's id or by our idempotency key in `metadata.billing_key`.
#[utoipa::path(post, path = "/v1/webhooks/gateway", tag = "webhooks",
    request_body(content = Object, description = "A gateway event: `{id, type, data: {object}}`"),
    params(("Stripe-Signature" = String, Header, description = "t=<unix seconds>,v1=<hex HMAC-SHA256 of \"t.body\">")),
    responses(
        (status = 200, description = "`applied`, `recorded` or `duplicate`"),
        (status = 400, description = "`missing_signature`, `stale_timestamp` or `malformed_json`", body = billing_http::error::ErrorEnvelope),
        (status = 401, description = "`invalid_signature`", body = billing_http::error::ErrorEnvelope),
        (status = 422, description = "`validation_failed`: not an event", body = billing_http::error::ErrorEnvelope)))]
pub async fn gateway(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let secrets: Vec<&[u8]> =
        state.infra.settings.signing.gateway_webhook.iter().map(|s| s.expose().as_bytes()).collect();
    let header = req.headers().get(billing_signing::STRIPE_SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    // The gateway signs with the real time, whatever our (test) clock says, as Stripe does.
    billing_signing::verify_stripe(&secrets, header, &body, chrono::Utc::now().timestamp())
        .map_err(billing_http::signed::rejection)?;
    let raw: Value = billing_http::extract::parse_json(&body)?;
    let event: GatewayEvent = billing_http::extract::parse_json(&body)?;
    let outcome = operations::apply_gateway_event(&state, &event.id, &event.kind, &event.data.object, &raw).await?;
    let status = match outcome {
        GatewayEventOutcome::Duplicate => "duplicate",
        GatewayEventOutcome::Applied => "applied",
        GatewayEventOutcome::Recorded => "recorded",
    };
    Ok(ok(json!({"status": status}), "gateway event received"))
}
