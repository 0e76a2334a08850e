//! Operations on the event traffic: the record of webhook deliveries (and sending one again), and events from the
//! payment gateway, which settle charges and refunds still pending here after an answer that was lost.

use billing_queue::{Payload, Queue, QueueName};
use serde_json::Value;

use crate::db;
pub use crate::db::models::DeliveryRow;
use crate::error::ServiceError;
use crate::services::payments::EventDelivery;
use crate::state::AppState;

/// What became of a gateway event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayEventOutcome {
    /// Its id was seen before.
    Duplicate,
    /// It settled a pending charge or refund.
    Applied,
    /// Kept, with nothing to settle.
    Recorded,
}

/// The latest `limit` webhook delivery attempts, newest first.
pub async fn deliveries(state: &AppState, limit: i64) -> Result<Vec<DeliveryRow>, ServiceError> {
    Ok(db::webhooks::recent_deliveries(&mut *state.conn().await?, limit).await?)
}

/// Queues the event of delivery `id` again; its event id, or `None` when there is no such delivery.
pub async fn redeliver(state: &AppState, id: i64) -> Result<Option<String>, ServiceError> {
    let Some((event_id, payload)) = db::webhooks::delivered_event(&mut *state.conn().await?, id).await? else {
        return Ok(None);
    };
    let event: EventDelivery = serde_json::from_value(payload)
        .map_err(|e| ServiceError::Internal(format!("delivery {id} recorded no payment event: {e}")))?;
    let queue = Queue::new(state.infra.redis.clone(), QueueName::PaySubscriptionUpdate);
    queue
        .enqueue(event.job(format!("webhook:{event_id}")), None)
        .await
        .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
    Ok(Some(event_id))
}

/// Applies a verified gateway event (Stripe's shape, `{id, type, data: {object}}`) once per event id: a charge or
/// refund still pending here, matched by the gateway's id or by our key in `metadata.billing_key`, is settled.
pub async fn apply_gateway_event(
    state: &AppState,
    event_id: &str,
    kind: &str,
    object: &Value,
    raw: &Value,
) -> Result<GatewayEventOutcome, ServiceError> {
    let reference = object["id"].as_str().unwrap_or_default().to_owned();
    let billing_key = object["metadata"]["billing_key"].as_str().map(str::to_owned);
    let applied = if let "payment_intent.succeeded" | "payment_intent.payment_failed" = kind {
        let key = billing_key.unwrap_or_else(|| reference.clone());
        let event = (event_id, kind, raw);
        let found = db::webhooks::record_charge_event(&mut *state.conn().await?, event, &reference, &key).await?;
        if !found.recorded {
            return Ok(GatewayEventOutcome::Duplicate);
        }
        match found.pending {
            Some(id) => {
                let outcome = crate::clients::gateway::http::charge_event_outcome(kind, object);
                crate::services::payments::settle_pending(state, id, outcome).await?
            }
            None => false,
        }
    } else {
        if !db::webhooks::record_gateway_event(&mut *state.conn().await?, event_id, kind, raw).await? {
            return Ok(GatewayEventOutcome::Duplicate);
        }
        match kind {
            "refund.created" | "refund.updated" | "refund.failed" => {
                match crate::services::refunds::pending_by_gateway(state, &reference, billing_key.as_deref()).await? {
                    Some(refund) => {
                        if let Some(outcome) = crate::clients::gateway::http::refund_event_outcome(object) {
                            crate::services::refunds::settle(state, refund, outcome).await?;
                        }
                        true
                    }
                    None => false,
                }
            }
            _ => false,
        }
    };
    Ok(if applied { GatewayEventOutcome::Applied } else { GatewayEventOutcome::Recorded })
}
