//! Webhook operations (administrators) and events from the payment gateway.

use actix_web::{HttpRequest, HttpResponse, web};
use billing_http::{AdminUser, ApiError, ok};
use billing_queue::{NewJob, Queue, QueueName};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::db::schema::{gateway_events, refunds, transactions, webhook_deliveries as d};
use crate::error::ServiceError;
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
    params(("limit" = Option<i64>, Query, description = "1–200, default 50")),
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

/// An event from the gateway.
#[derive(Debug, Deserialize)]
pub struct GatewayEvent {
    pub id: String,
    /// `charge.succeeded`, `charge.failed`, `refund.succeeded`, `refund.failed`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The gateway reference of the charge or refund.
    pub reference: String,
    pub decline_code: Option<String>,
}

/// Events from the payment gateway, signed with the gateway secret, applied once per gateway event id. They
/// settle transactions and refunds still pending here (for instance after an ambiguous answer).
pub async fn gateway(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let secrets: Vec<&[u8]> = state.settings.signing.gateway_webhook.iter().map(|s| s.expose().as_bytes()).collect();
    billing_http::signed::verify(&req, &body, &secrets, state.now().timestamp())?;
    let raw: Value = billing_http::extract::parse_json(&body)?;
    let event: GatewayEvent = billing_http::extract::parse_json(&body)?;
    let mut conn = state.conn().await?;
    let applied = conn
        .transaction::<_, ServiceError, _>(async move |conn| {
            let inserted = diesel::insert_into(gateway_events::table)
                .values((
                    gateway_events::event_id.eq(&event.id),
                    gateway_events::event_type.eq(&event.kind),
                    gateway_events::payload.eq(&raw),
                ))
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
            if inserted == 0 {
                return Ok("duplicate");
            }
            let updated = match event.kind.as_str() {
                "charge.succeeded" | "charge.failed" => {
                    let status = if event.kind == "charge.succeeded" { "succeeded" } else { "failed" };
                    diesel::update(
                        transactions::table
                            .filter(transactions::gateway_reference.eq(&event.reference))
                            .filter(transactions::status.eq("pending")),
                    )
                    .set((transactions::status.eq(status), transactions::decline_code.eq(&event.decline_code)))
                    .execute(conn)
                    .await?
                }
                "refund.succeeded" | "refund.failed" => {
                    let status = if event.kind == "refund.succeeded" { "succeeded" } else { "failed" };
                    diesel::update(
                        refunds::table
                            .filter(refunds::gateway_reference.eq(&event.reference))
                            .filter(refunds::status.eq("pending")),
                    )
                    .set(refunds::status.eq(status))
                    .execute(conn)
                    .await?
                }
                _ => 0,
            };
            Ok(if updated > 0 { "applied" } else { "recorded" })
        })
        .await?;
    Ok(ok(json!({"status": applied}), "gateway event received"))
}
