//! The subscription-service's integration tests, in one test binary: one link of the service and its dependencies
//! instead of one per file, which keeps a clean build's disk use and link time down.

mod common;

mod auth;
mod clock;
mod foundation;
mod internal;
mod invoices;
mod openapi;
mod plans;
mod proxy;
mod queues;
mod security;
mod subscriptions;
mod usage;
mod webhooks;
