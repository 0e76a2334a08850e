//! The payment gateway boundary. [`http::HttpGateway`] is the only implementation: a client of Stripe's API shape,
//! talking to the gateway simulator (its own process, `gateway-simulator`) in development and tests and to a real
//! processor in production. Nothing a gateway remembers lives in our processes.
//!
//! The card number and CVV cross this boundary and nothing else: the service keeps only the token, brand, last 4
//! and expiry the gateway hands back.

pub mod http;

use billing_domain::Money;
use futures_util::future::BoxFuture;

/// Card details as the customer typed them. Never stored, logged, queued or serialised: `Debug` hides them.
#[derive(Clone)]
pub struct CardDetails {
    pub number: String,
    pub exp_month: u32,
    pub exp_year: u32,
    pub cvv: String,
    pub cardholder_name: String,
}

impl std::fmt::Debug for CardDetails {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardDetails").field("last4", &self.last4()).finish_non_exhaustive()
    }
}

impl CardDetails {
    /// The last four digits.
    pub fn last4(&self) -> String {
        self.number.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect()
    }

    /// The brand, from the number's prefix.
    pub fn brand(&self) -> &'static str {
        billing_domain::card::brand(&self.number)
    }
}

/// What to charge.
#[derive(Debug, Clone)]
pub enum PaymentSource {
    Card(CardDetails),
    /// A saved payment method's gateway token.
    Token(String),
}

/// A charge request; the gateway charges at most once per `idempotency_key`.
#[derive(Debug, Clone)]
pub struct ChargeRequest {
    pub idempotency_key: String,
    pub amount: Money,
    pub source: PaymentSource,
    /// Keep the card for later charges (ignored for tokens).
    pub save_card: bool,
}

/// A saved card as the gateway returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedCard {
    pub token: String,
    /// The name on the card, as the gateway keeps it.
    pub cardholder_name: String,
    pub brand: String,
    pub last4: String,
    pub exp_month: u32,
    pub exp_year: u32,
}

/// The result of a charge the gateway decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    Succeeded {
        reference: String,
        card: Option<SavedCard>,
    },
    /// `retryable`: a soft decline (insufficient funds, processing error) that dunning may try again.
    Declined {
        reference: String,
        code: String,
        message: String,
        retryable: bool,
    },
}

/// The result of a refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundOutcome {
    Succeeded { reference: String },
    Failed { code: String, message: String },
}

/// The gateway could not be asked, or did not answer: the outcome is unknown, and a retry with the same
/// idempotency key learns it without charging twice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    #[error("gateway unavailable: {0}")]
    Unavailable(String),
    #[error("gateway timed out; the outcome is unknown")]
    Timeout,
    #[error("unknown payment method")]
    UnknownToken,
}

/// A payment processor.
pub trait PaymentGateway: Send + Sync + std::fmt::Debug {
    /// Charges `request.amount`; the same idempotency key always gives the same outcome and charges once.
    fn charge(&self, request: ChargeRequest) -> BoxFuture<'_, Result<ChargeOutcome, GatewayError>>;

    /// What became of the charge made under `idempotency_key`, if the gateway ever made one (the answer to it was
    /// lost); asking never charges.
    fn find_charge(&self, idempotency_key: String) -> BoxFuture<'_, Result<Option<ChargeOutcome>, GatewayError>>;

    /// Keeps a card for later charges without charging it, returning its reusable token.
    fn save_card(&self, card: CardDetails) -> BoxFuture<'_, Result<SavedCard, GatewayError>>;

    /// Refunds `amount` of the charge `reference`; the same idempotency key refunds once.
    fn refund(
        &self,
        idempotency_key: String,
        reference: String,
        amount: Money,
    ) -> BoxFuture<'_, Result<RefundOutcome, GatewayError>>;
}
