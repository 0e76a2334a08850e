//! The payment event: what the payment service tells the subscription service about a payment or a refund, signed,
//! at `POST /v1/webhooks/payment`.
//!
//! On the wire: `{event_id, event_type, status, transaction_id, subscription_id, invoice_id, amount, currency,
//! occurred_at, metadata}`, where `metadata`'s shape follows `event_type`. Here `event_type`, `status` and
//! `metadata` are one typed [`PaymentEventDetail`].

use billing_domain::{InvoiceId, RefundId, SubscriptionId, TransactionId};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A payment or refund outcome, applied once per `event_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "WireEvent", into = "WireEvent")]
pub struct PaymentEvent {
    /// `evt_<transaction or refund id>`: the receiver applies each once.
    pub event_id: String,
    pub transaction_id: TransactionId,
    pub subscription_id: Option<SubscriptionId>,
    pub invoice_id: InvoiceId,
    /// Decimal text with the currency's digits (`"29.99"`).
    pub amount: String,
    /// ISO 4217, upper case.
    pub currency: String,
    pub occurred_at: DateTime<Utc>,
    pub detail: PaymentEventDetail,
}

/// What happened, with what each kind of event says.
#[derive(Debug, Clone, PartialEq)]
pub enum PaymentEventDetail {
    /// `payment.succeeded`.
    PaymentSucceeded(PaymentSucceeded),
    /// `payment.failed`.
    PaymentFailed(PaymentFailed),
    /// `refund.succeeded`.
    RefundSucceeded(RefundSucceeded),
    /// An `event_type` this version does not know: received, recorded, never applied.
    Unknown { event_type: String, status: String, metadata: Value },
}

/// `metadata` of `payment.succeeded`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentSucceeded {
    /// The saved card it was paid with (charged or kept), which renewals charge next: the payment service's id
    /// of it, opaque to the receiver.
    #[serde(default)]
    pub payment_method_id: Option<String>,
    #[serde(default)]
    pub gateway_reference: String,
    /// Charged without the customer present (renewal, retry, conversion, proration).
    #[serde(default)]
    pub off_session: bool,
}

/// `metadata` of `payment.failed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentFailed {
    #[serde(default = "declined")]
    pub decline_code: String,
    /// Whether dunning may try the card again (a soft decline); absent: judged from the code.
    #[serde(default)]
    pub retryable: Option<bool>,
    #[serde(default)]
    pub off_session: bool,
}

fn declined() -> String {
    "declined".to_owned()
}

/// `metadata` of `refund.succeeded`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundSucceeded {
    /// Always sent; absent only in a malformed event, which the receiver refuses to apply.
    #[serde(default)]
    pub refund_id: Option<RefundId>,
    #[serde(default)]
    pub reason: Option<String>,
    /// The merchant asked for the subscription to end with the refund.
    #[serde(default)]
    pub cancel_subscription: bool,
}

impl PaymentEventDetail {
    /// The wire's `event_type`.
    pub fn event_type(&self) -> &str {
        match self {
            Self::PaymentSucceeded(_) => "payment.succeeded",
            Self::PaymentFailed(_) => "payment.failed",
            Self::RefundSucceeded(_) => "refund.succeeded",
            Self::Unknown { event_type, .. } => event_type,
        }
    }

    /// The wire's `status`.
    pub fn status(&self) -> &str {
        match self {
            Self::PaymentSucceeded(_) | Self::RefundSucceeded(_) => "succeeded",
            Self::PaymentFailed(_) => "failed",
            Self::Unknown { status, .. } => status,
        }
    }
}

impl PaymentEvent {
    /// The wire's `event_type`.
    pub fn event_type(&self) -> &str {
        self.detail.event_type()
    }
}

/// The event as it travels.
#[derive(Serialize, Deserialize)]
struct WireEvent {
    event_id: String,
    event_type: String,
    status: String,
    transaction_id: TransactionId,
    subscription_id: Option<SubscriptionId>,
    invoice_id: InvoiceId,
    amount: String,
    currency: String,
    #[serde(serialize_with = "seconds")]
    occurred_at: DateTime<Utc>,
    #[serde(default)]
    metadata: Value,
}

fn seconds<S: serde::Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Secs, true))
}

impl From<WireEvent> for PaymentEvent {
    fn from(wire: WireEvent) -> Self {
        fn typed<T: serde::de::DeserializeOwned>(metadata: &Value) -> Option<T> {
            // A missing `metadata` reads as `{}`: every field has its default.
            let object = if metadata.is_null() { Value::Object(Default::default()) } else { metadata.clone() };
            serde_json::from_value(object).ok()
        }
        let known = match wire.event_type.as_str() {
            "payment.succeeded" => typed(&wire.metadata).map(PaymentEventDetail::PaymentSucceeded),
            "payment.failed" => typed(&wire.metadata).map(PaymentEventDetail::PaymentFailed),
            "refund.succeeded" => typed(&wire.metadata).map(PaymentEventDetail::RefundSucceeded),
            _ => None,
        };
        let detail = known.unwrap_or(PaymentEventDetail::Unknown {
            event_type: wire.event_type,
            status: wire.status,
            metadata: wire.metadata,
        });
        Self {
            event_id: wire.event_id,
            transaction_id: wire.transaction_id,
            subscription_id: wire.subscription_id,
            invoice_id: wire.invoice_id,
            amount: wire.amount,
            currency: wire.currency,
            occurred_at: wire.occurred_at,
            detail,
        }
    }
}

impl From<PaymentEvent> for WireEvent {
    fn from(event: PaymentEvent) -> Self {
        let (event_type, status) = (event.detail.event_type().to_owned(), event.detail.status().to_owned());
        let metadata = match event.detail {
            PaymentEventDetail::PaymentSucceeded(m) => serde_json::to_value(m),
            PaymentEventDetail::PaymentFailed(m) => serde_json::to_value(m),
            PaymentEventDetail::RefundSucceeded(m) => serde_json::to_value(m),
            PaymentEventDetail::Unknown { metadata, .. } => Ok(metadata),
        }
        .unwrap_or_default();
        Self {
            event_id: event.event_id,
            event_type,
            status,
            transaction_id: event.transaction_id,
            subscription_id: event.subscription_id,
            invoice_id: event.invoice_id,
            amount: event.amount,
            currency: event.currency,
            occurred_at: event.occurred_at,
            metadata,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use uuid::Uuid;

    fn event(detail: PaymentEventDetail) -> PaymentEvent {
        PaymentEvent {
            event_id: "evt_1".into(),
            transaction_id: Uuid::nil().into(),
            subscription_id: None,
            invoice_id: Uuid::max().into(),
            amount: "29.99".into(),
            currency: "USD".into(),
            occurred_at: DateTime::from_timestamp(1_795_000_000, 500_000_000).unwrap_or_default(),
            detail,
        }
    }

    #[test]
    fn each_event_travels_in_the_wire_shape_and_back() {
        let succeeded = event(PaymentEventDetail::PaymentSucceeded(PaymentSucceeded {
            payment_method_id: Some(Uuid::nil().to_string()),
            gateway_reference: "pi_1".into(),
            off_session: true,
        }));
        let wire = serde_json::to_value(&succeeded).unwrap_or_default();
        assert_eq!(wire["event_type"], "payment.succeeded");
        assert_eq!(wire["status"], "succeeded");
        assert_eq!(wire["occurred_at"], "2026-11-18T11:06:40Z", "whole seconds, as always sent");
        assert_eq!(
            wire["metadata"],
            json!({"payment_method_id": Uuid::nil(), "gateway_reference": "pi_1", "off_session": true})
        );
        let back: PaymentEvent = serde_json::from_value(wire).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.detail, succeeded.detail);

        let failed = event(PaymentEventDetail::PaymentFailed(PaymentFailed {
            decline_code: "insufficient_funds".into(),
            retryable: Some(true),
            off_session: false,
        }));
        let wire = serde_json::to_value(&failed).unwrap_or_default();
        assert_eq!((wire["event_type"].as_str(), wire["status"].as_str()), (Some("payment.failed"), Some("failed")));
        let refunded = event(PaymentEventDetail::RefundSucceeded(RefundSucceeded {
            refund_id: Some(Uuid::max().into()),
            reason: None,
            cancel_subscription: true,
        }));
        let back: PaymentEvent = serde_json::from_value(serde_json::to_value(&refunded).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.detail, refunded.detail);
    }

    #[test]
    fn an_unknown_type_or_unreadable_metadata_is_kept_as_unknown() {
        let raw = json!({"event_id": "e", "event_type": "payment.teleported", "status": "succeeded",
            "transaction_id": Uuid::nil(), "subscription_id": null, "invoice_id": Uuid::nil(), "amount": "1",
            "currency": "USD", "occurred_at": "2026-11-21T12:00:00Z", "metadata": {"x": 1}});
        let event: PaymentEvent = serde_json::from_value(raw.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(&event.detail, PaymentEventDetail::Unknown { event_type, .. } if event_type == "payment.teleported")
        );
        assert_eq!(serde_json::to_value(&event).unwrap_or_default(), raw, "sent on unchanged");
        let mut wrong = raw;
        wrong["event_type"] = json!("payment.failed");
        wrong["metadata"] = json!({"decline_code": 7});
        let event: PaymentEvent = serde_json::from_value(wrong).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(event.detail, PaymentEventDetail::Unknown { .. }));
    }

    #[test]
    fn absent_metadata_fields_take_their_defaults() {
        let raw = json!({"event_id": "e", "event_type": "payment.failed", "status": "failed",
            "transaction_id": Uuid::nil(), "subscription_id": null, "invoice_id": Uuid::nil(), "amount": "1",
            "currency": "USD", "occurred_at": "2026-11-21T12:00:00Z"});
        let event: PaymentEvent = serde_json::from_value(raw).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            event.detail,
            PaymentEventDetail::PaymentFailed(PaymentFailed {
                decline_code: "declined".into(),
                retryable: None,
                off_session: false
            })
        );
    }
}
