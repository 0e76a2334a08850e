//! Queue consumers: each job type names its payload (declared where its jobs are made) and handles it; the
//! service's worker runs one consumer per type.

pub mod charges;
pub mod plan_change;
pub mod trials;
pub mod usage;

use billing_queue::Envelope;
use billing_queue::worker::JobError;

/// A failure worth another try.
fn retry(e: impl std::fmt::Display) -> JobError {
    JobError::Retry(e.to_string())
}

/// The request id a job's calls carry: its correlation id, else its own id.
fn request_id(envelope: &Envelope) -> String {
    envelope.correlation_id.clone().unwrap_or_else(|| envelope.id.to_string())
}
