//! The payment service, as the subscription worker calls it: signed `POST /v1/internal/charges`.

use billing_domain::{TransactionId, UserId};
use std::time::Duration;

use billing_config::Settings;
use billing_contract::Envelope;
pub use billing_contract::internal::ChargeRequest;
use billing_contract::internal::{Charged, DeclineDetails};
use billing_http::signed::SignedClient;
use billing_infra::SharedClock;

/// What the payment service answered.
#[derive(Debug, Clone, PartialEq)]
pub enum ChargeOutcome {
    /// 201: charged; the transaction.
    Succeeded { transaction_id: TransactionId },
    /// 402: declined; `retryable` is false for a hard decline.
    Declined { transaction_id: TransactionId, decline_code: String, retryable: bool },
    /// 422 naming the payment method: the user has none saved (nothing was charged).
    NoPaymentMethod,
    /// 409: the invoice is already paid or another charge of it is in flight.
    NotPayable(String),
    /// Any other 4xx: the request can never succeed as sent.
    Rejected(String),
}

/// Failures worth retrying with the same key: the payment service or its gateway was unreachable or busy.
#[derive(Debug, thiserror::Error)]
#[error("payment service: {0}")]
pub struct Unavailable(pub String);

/// A signed client of the payment service's internal API.
#[derive(Debug, Clone)]
pub struct PaymentClient(SignedClient);

impl PaymentClient {
    /// From the configured URL and the subscription→payment secrets (the first signs).
    pub fn from_settings(settings: &Settings, clock: SharedClock) -> anyhow::Result<Self> {
        let keys = billing_http::signed::Keys::new(&settings.signing.internal_sub_to_pay);
        // Longer than the payment service's own gateway retries, so its answer is not cut off mid-charge.
        Ok(Self(SignedClient::new(&settings.services.payment_url, keys, clock, Duration::from_secs(30))?))
    }

    /// Whether the user has a saved payment method to charge.
    pub async fn has_payment_method(&self, user: UserId, request_id: &str) -> Result<bool, Unavailable> {
        let path = format!("/v1/internal/users/{user}/default-payment-method");
        let res = self.0.get(&path, request_id).send().await.map_err(|e| Unavailable(e.to_string()))?;
        match res.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            status => Err(Unavailable(format!("answered {status}"))),
        }
    }

    /// Charges an invoice; the outcome the payment service decided, or `Unavailable` to retry with the same key.
    pub async fn charge(&self, request: &ChargeRequest, request_id: &str) -> Result<ChargeOutcome, Unavailable> {
        let body = serde_json::to_vec(request).map_err(|e| Unavailable(e.to_string()))?;
        let res = self
            .0
            .post_json("/v1/internal/charges", &request.idempotency_key, body, request_id)
            .send()
            .await
            .map_err(|e| Unavailable(e.to_string()))?;
        let status = res.status().as_u16();
        // A refused signature is retried too: the clocks of the two services apart by more than the window, or a
        // secret being rotated on one side first, passes; a charge job must not be dropped for it. (Seen when a
        // test clock moved a month while a charge was in flight.)
        if matches!(status, 401 | 408 | 429) || status >= 500 {
            return Err(Unavailable(format!("answered {status}")));
        }
        let envelope: Envelope<Charged> =
            res.json().await.map_err(|e| Unavailable(format!("answered {status} unreadably: {e}")))?;
        let message = || format!("{status} {}", envelope.describe());
        match status {
            201 => envelope
                .data
                .map(|charged| ChargeOutcome::Succeeded { transaction_id: charged.transaction_id })
                .ok_or_else(|| Unavailable("201 without the payment".to_owned())),
            402 => {
                let declined: DeclineDetails = serde_json::from_value(envelope.details.clone())
                    .map_err(|e| Unavailable(format!("402 without its details: {e}")))?;
                let retryable = billing_domain::dunning::is_retryable(declined.retryable, &declined.decline_code);
                Ok(ChargeOutcome::Declined {
                    transaction_id: declined.transaction_id,
                    decline_code: declined.decline_code,
                    retryable,
                })
            }
            409 => Ok(ChargeOutcome::NotPayable(message())),
            422 if envelope.names_field("payment_method_id") => Ok(ChargeOutcome::NoPaymentMethod),
            _ => Ok(ChargeOutcome::Rejected(message())),
        }
    }
}
