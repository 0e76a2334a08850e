//! What every request handler and job shares.

use std::sync::Arc;

use billing_runtime::Infra;

use crate::clients::SubscriptionClient;
use crate::clients::gateway::PaymentGateway;

/// The payment service's state, built once per process.
#[derive(Clone)]
pub struct AppState {
    /// What every process of the workspace shares: the settings, the pool, Redis and the clock.
    pub infra: Infra,
    pub gateway: Arc<dyn PaymentGateway>,
    pub subscriptions: SubscriptionClient,
    /// Signs and posts payment events to the subscription service.
    pub events: billing_http::signed::SignedClient,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("gateway", &self.gateway).finish_non_exhaustive()
    }
}

impl AppState {
    /// Now, by the service's clock.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.infra.clock.now()
    }

    /// Borrows a pooled connection.
    pub async fn conn(&self) -> Result<billing_infra::DbConn, crate::error::ServiceError> {
        self.infra.db.get().await.map_err(|e| crate::error::ServiceError::Unavailable(e.to_string()))
    }
}
