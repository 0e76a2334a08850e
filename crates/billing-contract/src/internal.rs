//! The signed internal API between the services (never in a public document).
//!
//! Subscription service, for the payment service: `GET /v1/internal/invoices/{id}` and
//! `GET /v1/internal/subscriptions/{id}/due` answer [`InvoiceDue`].
//! Payment service, for the subscription service: `POST /v1/internal/charges` takes a [`ChargeRequest`] and answers
//! 201 [`Charged`] or 402 with [`DeclineDetails`]; `GET /v1/internal/users/{id}/default-payment-method` answers
//! [`DefaultPaymentMethod`] or 404.

use billing_domain::{InvoiceId, PaymentMethodId, SubscriptionId, TransactionId, UserId};
use serde::{Deserialize, Serialize};

/// What is due on an invoice, and whose it is: asked before every charge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceDue {
    pub invoice_id: InvoiceId,
    pub user_id: UserId,
    pub subscription_id: Option<SubscriptionId>,
    /// `INV-YYYYMM-NNNN` once finalized.
    pub number: Option<String>,
    pub status: String,
    /// True when the invoice is open with something to pay.
    pub payable: bool,
    /// Decimal text with the currency's digits.
    pub amount_due: String,
    pub currency: String,
    /// The saved payment method the subscription charges, if any.
    pub payment_method_id: Option<String>,
}

/// A charge of an invoice to a saved card, asked by the subscription service (renewals, retries, conversions,
/// prorations).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChargeRequest {
    pub invoice_id: InvoiceId,
    pub user_id: UserId,
    /// Exactly what is due: decimal text with the currency's digits.
    pub amount: String,
    pub currency: String,
    /// The card to charge while it lives; the user's default otherwise.
    #[serde(default)]
    pub payment_method_id: Option<PaymentMethodId>,
    /// One charge per key, however often the caller retries (1–255 characters).
    pub idempotency_key: String,
}

/// The 201 answer to a charge: the payment as its owner would see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charged {
    pub transaction_id: TransactionId,
    /// `success`.
    pub status: String,
    pub amount: String,
    pub currency: String,
    pub gateway_reference: String,
    pub card: CardSummary,
}

/// A card as much as is ever kept or shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardSummary {
    pub brand: String,
    pub last4: String,
}

/// `details` of a 402 `payment_declined`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeclineDetails {
    pub transaction_id: TransactionId,
    pub decline_code: String,
    /// Whether the card may be tried again (a soft decline); absent: judged from the code.
    #[serde(default)]
    pub retryable: Option<bool>,
}

/// The user's default saved payment method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultPaymentMethod {
    pub payment_method_id: PaymentMethodId,
    pub brand: String,
    pub last4: String,
}
