//! What every request handler shares.

use billing_auth::JwtIssuer;
use billing_http::auth::Revocations;
use billing_http::ratelimit::RateLimiter;
use billing_runtime::Infra;

use crate::clients::PaymentClient;
use crate::services::catalog::PlanCache;
use crate::services::subscription_cache::SubscriptionCache;

/// The subscription service's state, built once per process.
#[derive(Clone)]
pub struct AppState {
    /// What every process of the workspace shares: the settings, the pool, Redis and the clock.
    pub infra: Infra,
    pub jwt: JwtIssuer,
    pub limiter: RateLimiter,
    /// Voids a user's access tokens in every process (refresh-token reuse, a role change).
    pub revocations: Revocations,
    pub plans: PlanCache,
    /// Each user's subscriptions, forgotten when the database announces a change.
    pub subscriptions: SubscriptionCache,
    pub payments: PaymentClient,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("infra", &self.infra).finish_non_exhaustive()
    }
}

impl AppState {
    /// Now, by the service's clock.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.infra.clock.now()
    }
}
