//! Queue handlers of the payment worker.

pub mod webhooks;
