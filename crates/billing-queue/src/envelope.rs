//! The job envelope every queue carries.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// A job as stored and delivered: `{id, action, correlation_id, idempotency_key, created_at, attempts,
/// max_attempts, payload}`. `attempts` is filled in at claim time (Redis counts it, the stored JSON never changes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: Uuid,
    /// What to do (`initial`, `renewal`, `upgrade`, `refund` …).
    pub action: String,
    /// The request or entity the job belongs to, carried into logs.
    pub correlation_id: Option<String>,
    /// The key the handler deduplicates its effect on.
    pub idempotency_key: String,
    pub created_at: DateTime<Utc>,
    /// Deliveries so far, this one included.
    pub attempts: u32,
    pub max_attempts: u32,
    pub payload: Value,
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// Enqueuing the same id twice stores one job (an outbox relay may push twice).
    pub id: Uuid,
    pub action: String,
    pub correlation_id: Option<String>,
    pub idempotency_key: String,
    pub payload: Value,
}

impl NewJob {
    /// A job with a fresh id.
    pub fn new(action: impl Into<String>, idempotency_key: impl Into<String>, payload: Value) -> Self {
        Self {
            id: Uuid::now_v7(),
            action: action.into(),
            correlation_id: None,
            idempotency_key: idempotency_key.into(),
            payload,
        }
    }

    /// Sets the correlation id.
    pub fn correlated(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }
}
