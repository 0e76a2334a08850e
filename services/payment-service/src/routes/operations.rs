//! Webhook operations (administrators) and events from the payment gateway.

use actix_web::{HttpRequest, HttpResponse, web};
use billing_http::{AdminUser, ApiError, ok};
use billing_queue::{NewJob, Queue, QueueName};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::db::schema::{gateway_events, transactions, webhook_deliveries as d};
use crate::error::ServiceError;
use crate::gateway::{ChargeOutcome, RefundOutcome};
use crate::state::AppState;

/// One attempt to deliver a webhook.
#[derive(Debug, Queryable, Serialize, ToSchema)]
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
    let rows: Vec<DeliveryDto> = d::table
        .order(d::id.desc())
        .limit(limit)
        .select((
            d::id,
            d::event_id,
            d::event_type,
            d::target_url,
            d::attempt,
            d::status_code,
            d::latency_ms,
            d::error,
            d::delivered,
            d::created_at,
        ))
        .load(&mut *state.conn().await?)
        .await
        .map_err(ServiceError::from)?;
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
    let (event_id, payload): (String, Value) = d::table
        .find(id.into_inner())
        .select((d::event_id, d::payload))
        .first(&mut *state.conn().await?)
        .await
        .optional()
        .map_err(ServiceError::from)?
        .ok_or_else(|| ApiError::not_found("delivery_not_found", "no such delivery"))?;
    let queue = Queue::new(state.redis.clone(), QueueName::PaySubscriptionUpdate);
    let action = payload["event_type"].as_str().unwrap_or("redelivery").to_owned();
    queue
        .enqueue(NewJob::new(action, format!("webhook:{event_id}"), payload), None)
        .await
        .map_err(|e| ApiError::unavailable(&e))?;
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
    let secrets: Vec<&[u8]> = state.settings.signing.gateway_webhook.iter().map(|s| s.expose().as_bytes()).collect();
    let header = req.headers().get(billing_signing::STRIPE_SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    // The gateway signs with the real time, whatever our (test) clock says, as Stripe does.
    billing_signing::verify_stripe(&secrets, header, &body, chrono::Utc::now().timestamp())
        .map_err(billing_http::signed::rejection)?;
    let raw: Value = billing_http::extract::parse_json(&body)?;
    let event: GatewayEvent = billing_http::extract::parse_json(&body)?;
    let object = &event.data.object;
    let reference = object["id"].as_str().unwrap_or_default().to_owned();
    let billing_key = object["metadata"]["billing_key"].as_str().map(str::to_owned);
    let mut conn = state.conn().await?;
    let (event_id, kind) = (event.id.clone(), event.kind.clone());
    let inserted = diesel::insert_into(gateway_events::table)
        .values((
            gateway_events::event_id.eq(&event_id),
            gateway_events::event_type.eq(&kind),
            gateway_events::payload.eq(&raw),
        ))
        .on_conflict_do_nothing()
        .execute(&mut conn)
        .await
        .map_err(ServiceError::from)?;
    drop(conn);
    if inserted == 0 {
        return Ok(ok(json!({"status": "duplicate"}), "gateway event received"));
    }
    let applied = match kind.as_str() {
        "payment_intent.succeeded" | "payment_intent.payment_failed" => {
            let pending: Option<uuid::Uuid> = transactions::table
                .filter(transactions::status.eq(crate::db::TransactionStatus::Pending))
                .filter(
                    transactions::gateway_reference
                        .eq(&reference)
                        .or(transactions::idempotency_key.eq(billing_key.clone().unwrap_or_else(|| reference.clone()))),
                )
                .select(transactions::id)
                .first(&mut *state.conn().await?)
                .await
                .optional()
                .map_err(ServiceError::from)?;
            match pending {
                Some(id) => {
                    let outcome = if kind == "payment_intent.succeeded" {
                        ChargeOutcome::Succeeded { reference: reference.clone(), card: None }
                    } else {
                        let error = &object["last_payment_error"];
                        let code = error["decline_code"].as_str().or(error["code"].as_str()).unwrap_or("card_declined");
                        ChargeOutcome::Declined {
                            reference: reference.clone(),
                            code: code.to_owned(),
                            message: error["message"].as_str().unwrap_or_default().to_owned(),
                            retryable: matches!(code, "insufficient_funds" | "processing_error"),
                        }
                    };
                    crate::services::payments::settle_pending(&state, id, outcome).await?
                }
                None => false,
            }
        }
        "refund.created" | "refund.updated" | "refund.failed" => {
            match crate::services::refunds::pending_by_gateway(&state, &reference, billing_key.as_deref()).await? {
                Some(refund) => {
                    let outcome = match object["status"].as_str() {
                        Some("succeeded") => Some(RefundOutcome::Succeeded { reference: reference.clone() }),
                        Some("failed" | "canceled") => Some(RefundOutcome::Failed {
                            code: object["failure_reason"].as_str().unwrap_or("refund_failed").to_owned(),
                            message: "the gateway reported the refund failed".to_owned(),
                        }),
                        _ => None,
                    };
                    if let Some(outcome) = outcome {
                        crate::services::refunds::settle(&state, refund, outcome).await?;
                    }
                    true
                }
                None => false,
            }
        }
        _ => false,
    };
    let status = if applied { "applied" } else { "recorded" };
    Ok(ok(json!({"status": status}), "gateway event received"))
}
