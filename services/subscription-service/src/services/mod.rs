//! Business rules: each function owns its transaction and returns a `ServiceError`.

pub mod auth;
pub mod billing;
pub mod catalog;
pub mod invoice_pdf;
pub mod invoices;
pub mod pause;
pub mod plans;
pub mod seed;
pub mod settlement;
pub mod subscription_cache;
pub mod subscriptions;
pub mod usage;

use crate::error::ServiceError;
use crate::state::AppState;

impl AppState {
    /// Borrows a pooled connection.
    pub async fn conn(&self) -> Result<billing_infra::DbConn, ServiceError> {
        self.infra.db.get().await.map_err(|e| ServiceError::Unavailable(e.to_string()))
    }
}
