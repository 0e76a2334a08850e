//! Tables of the payment database.

pub mod schema;
pub mod status;

pub use status::{RefundStatus, TransactionStatus};
