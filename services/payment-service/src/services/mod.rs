//! Business rules of the payment service.

pub mod card;
pub mod idempotency;
pub mod methods;
pub mod operations;
pub mod payments;
pub mod refunds;
