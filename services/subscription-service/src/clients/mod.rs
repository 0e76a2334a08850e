//! What the subscription service calls: the payment service's internal API.

pub mod payments;

pub use payments::{ChargeOutcome, ChargeRequest, PaymentClient};
