//! Queue consumers of the payment worker: each job type names its payload (declared where its jobs are made).

pub mod refunds;
pub mod webhooks;
