#![doc = include_str!("../README.md")]

pub mod auth;
pub mod client_ip;
pub mod clock;
pub mod context;
pub mod envelope;
pub mod error;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod queues;
pub mod ratelimit;
pub mod server;
pub mod signed;
pub mod telemetry;

pub use auth::{AdminUser, AuthUser};
pub use context::{RequestId, current_request_id};
pub use envelope::{ApiResponse, created, ok};
pub use error::ApiError;
pub use extract::Json;
pub use server::{AppContext, app};

/// How long an outgoing client keeps an idle connection for reuse: less than the 5 s an actix server keeps one
/// open, so a request is never sent on a connection the server is closing at that moment (a transport error
/// that would cost a charge job a retry delay).
pub const IDLE_CONNECTION: std::time::Duration = std::time::Duration::from_secs(4);

/// Every request body is refused above this size (413).
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// RFC 3339 UTC with `Z`, to the second, as every timestamp in the API is rendered.
pub fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
