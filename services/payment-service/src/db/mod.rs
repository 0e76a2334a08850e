//! Tables of the payment database.

pub mod schema;
