//! What every request handler shares.

use std::sync::Arc;

use billing_auth::JwtIssuer;
use billing_config::Settings;
use billing_http::auth::Revocations;
use billing_http::ratelimit::RateLimiter;
use billing_infra::{DbPool, Redis, SharedClock};

use crate::clients::PaymentClient;
use crate::services::catalog::PlanCache;

/// The subscription service's state, built once per process.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: DbPool,
    pub redis: Redis,
    pub clock: SharedClock,
    pub jwt: JwtIssuer,
    pub limiter: RateLimiter,
    /// Voids a user's access tokens in every process (refresh-token reuse, a role change).
    pub revocations: Revocations,
    pub plans: PlanCache,
    pub payments: PaymentClient,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("redis", &self.redis).finish_non_exhaustive()
    }
}

impl AppState {
    /// Now, by the service's clock.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}
