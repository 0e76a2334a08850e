//! Rows and repository functions of the payment database. Every function takes the connection (or transaction)
//! it runs on; nothing above this folder writes a query.

pub mod idempotency;
pub mod methods;
pub mod models;
pub mod refunds;
pub mod schema;
pub mod transactions;
pub mod webhooks;

pub use billing_domain::{KeyStatus, RefundStatus, TransactionStatus};
