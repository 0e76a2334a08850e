//! The payment-service's integration tests, in one test binary: one link of the service and its dependencies
//! instead of one per file, which keeps a clean build's disk use and link time down.

mod common;

mod billing_cycle;
mod foundation;
mod payments;
mod security;
mod simulation;
