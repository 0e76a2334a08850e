//! Rows and repository functions. Every function takes the connection (or transaction) it runs on.

pub mod invoices;
pub mod models;
pub mod plans;
pub mod schema;
pub mod subscriptions;
pub mod usage;
pub mod users;
