//! The payment service, as the subscription worker calls it: signed `POST /v1/internal/charges`.

use std::time::Duration;

use billing_config::Settings;
use billing_infra::SharedClock;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// A charge of an invoice to the user's default saved payment method.
#[derive(Debug, Clone, Serialize)]
pub struct ChargeRequest {
    pub invoice_id: Uuid,
    pub user_id: Uuid,
    pub amount: String,
    pub currency: String,
    /// The same key is the same charge, however often it is sent.
    pub idempotency_key: String,
}

/// What the payment service answered.
#[derive(Debug, Clone, PartialEq)]
pub enum ChargeOutcome {
    /// 201: charged; the transaction.
    Succeeded { transaction_id: Uuid },
    /// 402: declined; `retryable` is false for a hard decline.
    Declined { transaction_id: Uuid, decline_code: String, retryable: bool },
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

/// Either envelope: `{success, data, …}` or `{success, error, code, details, …}`.
#[derive(Debug, Deserialize)]
struct Envelope {
    data: Option<Value>,
    error: Option<String>,
    code: Option<String>,
    details: Option<Value>,
}

/// A signed client of the payment service's internal API.
#[derive(Debug, Clone)]
pub struct PaymentClient {
    http: reqwest::Client,
    base: String,
    secret: Vec<u8>,
    clock: SharedClock,
}

impl PaymentClient {
    /// From the configured URL and the subscription→payment secret (the first signs).
    pub fn from_settings(settings: &Settings, clock: SharedClock) -> anyhow::Result<Self> {
        let secret =
            settings.signing.internal_sub_to_pay.first().map(|s| s.expose().as_bytes().to_vec()).unwrap_or_default();
        // Longer than the payment service's own gateway retries, so its answer is not cut off mid-charge.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(2))
            .build()?;
        Ok(Self { http, base: settings.services.payment_url.clone(), secret, clock })
    }

    /// Whether the user has a saved payment method to charge.
    pub async fn has_payment_method(&self, user: Uuid, request_id: &str) -> Result<bool, Unavailable> {
        let path = format!("/v1/internal/users/{user}/default-payment-method");
        let now = self.clock.now().timestamp();
        let res = billing_http::signed::get(&self.http, &self.base, &path, &self.secret, now, request_id)
            .send()
            .await
            .map_err(|e| Unavailable(e.to_string()))?;
        match res.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            status => Err(Unavailable(format!("answered {status}"))),
        }
    }

    /// Charges an invoice; the outcome the payment service decided, or `Unavailable` to retry with the same key.
    pub async fn charge(&self, request: &ChargeRequest, request_id: &str) -> Result<ChargeOutcome, Unavailable> {
        let body = serde_json::to_vec(request).map_err(|e| Unavailable(e.to_string()))?;
        let url = format!("{}/v1/internal/charges", self.base);
        let now = self.clock.now().timestamp();
        let res = billing_http::signed::post_json(
            &self.http,
            &url,
            &self.secret,
            now,
            &request.idempotency_key,
            body,
            request_id,
        )
        .send()
        .await
        .map_err(|e| Unavailable(e.to_string()))?;
        let status = res.status().as_u16();
        if matches!(status, 408 | 429) || status >= 500 {
            return Err(Unavailable(format!("answered {status}")));
        }
        let envelope: Envelope =
            res.json().await.map_err(|e| Unavailable(format!("answered {status} unreadably: {e}")))?;
        let uuid_at = |v: Option<&Value>, key: &str| {
            v.and_then(|v| v.get(key)).and_then(Value::as_str).and_then(|s| s.parse::<Uuid>().ok())
        };
        let details = envelope.details.as_ref();
        let message = || {
            format!("{status} {}: {}", envelope.code.as_deref().unwrap_or(""), envelope.error.as_deref().unwrap_or(""))
        };
        match status {
            201 => uuid_at(envelope.data.as_ref(), "transaction_id")
                .map(|transaction_id| ChargeOutcome::Succeeded { transaction_id })
                .ok_or_else(|| Unavailable("201 without a transaction id".to_owned())),
            402 => {
                let transaction_id = uuid_at(details, "transaction_id")
                    .ok_or_else(|| Unavailable("402 without a transaction id".to_owned()))?;
                let decline_code = details
                    .and_then(|d| d.get("decline_code"))
                    .and_then(Value::as_str)
                    .unwrap_or("declined")
                    .to_owned();
                let said = details.and_then(|d| d.get("retryable")).and_then(Value::as_bool);
                let retryable = billing_domain::dunning::is_retryable(said, &decline_code);
                Ok(ChargeOutcome::Declined { transaction_id, decline_code, retryable })
            }
            409 => Ok(ChargeOutcome::NotPayable(message())),
            422 if details.and_then(|d| d.get("fields")).and_then(|f| f.get("payment_method_id")).is_some() => {
                Ok(ChargeOutcome::NoPaymentMethod)
            }
            _ => Ok(ChargeOutcome::Rejected(message())),
        }
    }
}
