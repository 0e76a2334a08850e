//! The subscription service, as the payment service calls it: signed internal lookups.

use std::time::Duration;

use billing_config::Settings;
use billing_contract::Envelope;
pub use billing_contract::internal::InvoiceDue;
use billing_domain::{InvoiceId, SubscriptionId};
use billing_http::signed::SignedClient;
use billing_infra::SharedClock;

use crate::error::ServiceError;

/// A signed client of the subscription service's internal API.
#[derive(Debug, Clone)]
pub struct SubscriptionClient(SignedClient);

impl SubscriptionClient {
    /// From the configured URL and the payment→subscription secrets (the first signs).
    pub fn from_settings(settings: &Settings, clock: SharedClock) -> anyhow::Result<Self> {
        let keys = billing_http::signed::Keys::new(&settings.signing.internal_pay_to_sub);
        Ok(Self(SignedClient::new(&settings.services.subscription_url, keys, clock, Duration::from_secs(5))?))
    }

    async fn get(&self, path: &str, request_id: &str) -> Result<Option<InvoiceDue>, ServiceError> {
        let res = self
            .0
            .get(path, request_id)
            .send()
            .await
            .map_err(|e| ServiceError::Unavailable(format!("subscription service: {e}")))?;
        match res.status().as_u16() {
            200 => res
                .json::<Envelope<InvoiceDue>>()
                .await
                .ok()
                .and_then(|e| e.data)
                .map(Some)
                .ok_or_else(|| ServiceError::Internal("subscription service answered unreadably".to_owned())),
            404 => Ok(None),
            status => Err(ServiceError::Unavailable(format!("subscription service answered {status}"))),
        }
    }

    /// What is due on `invoice`.
    pub async fn invoice(&self, invoice: InvoiceId, request_id: &str) -> Result<Option<InvoiceDue>, ServiceError> {
        self.get(&format!("/v1/internal/invoices/{invoice}"), request_id).await
    }

    /// The open invoice of `subscription`.
    pub async fn subscription_due(
        &self,
        subscription: SubscriptionId,
        request_id: &str,
    ) -> Result<Option<InvoiceDue>, ServiceError> {
        self.get(&format!("/v1/internal/subscriptions/{subscription}/due"), request_id).await
    }
}
