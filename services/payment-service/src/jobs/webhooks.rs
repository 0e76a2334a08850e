//! `q:pay:subscription_update`: delivers signed payment events to the subscription service and records every
//! attempt. 2xx is done; 5xx, 408, 429, timeouts and a refused signature (401, or 400 `stale_timestamp`: the
//! clocks apart, a secret rotated on one side first) are retried on the queue's policy (about a day), each attempt
//! signed anew; 422 (and any other 4xx) can never succeed and is not retried.

use std::time::Instant;

use billing_contract::PaymentEvent;
use billing_queue::worker::JobError;
use billing_queue::{Envelope, Job};

use crate::db;
use crate::db::models::NewDelivery;
use crate::services::payments::EventDelivery;
use crate::state::AppState;

#[derive(Debug)]
pub struct DeliverEvent;

impl Job for DeliverEvent {
    type Payload = EventDelivery;
    type State = AppState;
    const CONCURRENCY: usize = 8;

    async fn run(state: &AppState, job: EventDelivery, envelope: &Envelope) -> Result<(), JobError> {
        deliver(state, job.0, envelope).await
    }
}

/// Posts the event to the subscription service, signed, and records the attempt.
async fn deliver(state: &AppState, event: PaymentEvent, envelope: &Envelope) -> Result<(), JobError> {
    let events = &state.events;
    let (event_id, event_type) = (event.event_id.clone(), event.event_type().to_owned());
    let body = serde_json::to_vec(&event).map_err(|e| JobError::Permanent(format!("unserialisable event: {e}")))?;
    let request_id = envelope.correlation_id.as_deref().unwrap_or(&event_id);
    let started = Instant::now();
    let sent = events.post_json("/v1/webhooks/payment", &event_id, body, request_id).send().await;
    let latency_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
    let (status_code, error, outcome) = match sent {
        Ok(res) => {
            let status = res.status().as_u16();
            let answer: serde_json::Value =
                if matches!(status, 400 | 409) { res.json().await.unwrap_or_default() } else { Default::default() };
            let outcome = match status {
                200..=299 => Ok(()),
                // The charge went through but its invoice can no longer take it: the money goes back.
                409 if answer["code"] == "payment_not_applied" && event_type == "payment.succeeded" => {
                    crate::services::refunds::return_unapplied_payment(
                        state,
                        event.transaction_id,
                        answer["error"].as_str().unwrap_or("not applied"),
                    )
                    .await
                    .map_err(|e| JobError::Retry(e.to_string()))
                }
                408 | 429 | 500..=599 => Err(JobError::Retry(format!("the subscription service answered {status}"))),
                // The signature, not the event, was refused: the two clocks apart (a moved test clock not yet seen
                // by both) or a secret rotated on one side first. The next attempt is signed anew.
                401 => Err(JobError::Retry("the subscription service refused the signature (401)".to_owned())),
                400 if answer["code"] == "stale_timestamp" => {
                    Err(JobError::Retry("the subscription service found the signature's time stale (400)".to_owned()))
                }
                _ => Err(JobError::Permanent(format!("the subscription service refused the event ({status})"))),
            };
            (Some(i32::from(status)), outcome.as_ref().err().map(ToString::to_string), outcome)
        }
        Err(err) => {
            let message = if err.is_timeout() { "timed out".to_owned() } else { format!("unreachable: {err}") };
            (None, Some(message.clone()), Err(JobError::Retry(message)))
        }
    };
    // The record of the attempt is best effort: delivery does not depend on it.
    if let Ok(mut conn) = state.conn().await {
        let target_url = events.url("/v1/webhooks/payment");
        let row = NewDelivery {
            event_id: &event_id,
            event_type: &event_type,
            target_url: &target_url,
            attempt: i32::try_from(envelope.attempts).unwrap_or(i32::MAX),
            status_code,
            latency_ms,
            error: error.as_deref(),
            delivered: outcome.is_ok(),
            payload: serde_json::to_value(&event).unwrap_or_default(),
        };
        let record = db::webhooks::record_delivery(&mut conn, &row).await;
        if let Err(err) = record {
            tracing::warn!(error = %err, "could not record a webhook delivery");
        }
    }
    if outcome.is_ok() {
        tracing::info!(event_id = %event_id, latency_ms, "webhook delivered");
    }
    outcome
}
