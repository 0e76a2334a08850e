//! The subscription service, as the payment service calls it: signed internal lookups.

use std::time::Duration;

use billing_config::Settings;
use billing_infra::SharedClock;
use serde::Deserialize;
use uuid::Uuid;

use crate::error::ServiceError;

/// What is due on an invoice, as the subscription service says.
#[derive(Debug, Clone, Deserialize)]
pub struct InvoiceDue {
    pub invoice_id: Uuid,
    pub user_id: Uuid,
    pub subscription_id: Option<Uuid>,
    pub status: String,
    pub payable: bool,
    pub amount_due: String,
    pub currency: String,
}

#[derive(Debug, Deserialize)]
struct Envelope<T> {
    data: T,
}

/// A signed client of the subscription service's internal API.
#[derive(Debug, Clone)]
pub struct SubscriptionClient {
    http: reqwest::Client,
    base: String,
    secret: Vec<u8>,
    /// Signatures carry the service's time, which the receiver (on the same clock) checks.
    clock: SharedClock,
}

impl SubscriptionClient {
    /// From the configured URL and the payment→subscription secret (the first signs).
    pub fn from_settings(settings: &Settings, clock: SharedClock) -> anyhow::Result<Self> {
        let secret =
            settings.signing.internal_pay_to_sub.first().map(|s| s.expose().as_bytes().to_vec()).unwrap_or_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(2))
            .build()?;
        Ok(Self { http, base: settings.services.subscription_url.clone(), secret, clock })
    }

    async fn get(&self, path: &str, request_id: &str) -> Result<Option<InvoiceDue>, ServiceError> {
        let now = self.clock.now().timestamp();
        let res = billing_http::signed::get(&self.http, &self.base, path, &self.secret, now, request_id)
            .send()
            .await
            .map_err(|e| ServiceError::Unavailable(format!("subscription service: {e}")))?;
        match res.status().as_u16() {
            200 => res
                .json::<Envelope<InvoiceDue>>()
                .await
                .map(|e| Some(e.data))
                .map_err(|e| ServiceError::Internal(format!("subscription service answered unreadably: {e}"))),
            404 => Ok(None),
            status => Err(ServiceError::Unavailable(format!("subscription service answered {status}"))),
        }
    }

    /// What is due on `invoice`.
    pub async fn invoice(&self, invoice: Uuid, request_id: &str) -> Result<Option<InvoiceDue>, ServiceError> {
        self.get(&format!("/v1/internal/invoices/{invoice}"), request_id).await
    }

    /// The open invoice of `subscription`.
    pub async fn subscription_due(
        &self,
        subscription: Uuid,
        request_id: &str,
    ) -> Result<Option<InvoiceDue>, ServiceError> {
        self.get(&format!("/v1/internal/subscriptions/{subscription}/due"), request_id).await
    }
}
