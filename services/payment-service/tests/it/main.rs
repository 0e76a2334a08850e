//! The payment-service's own integration tests, in one test binary. Tests that need the subscription service too
//! (payments of its invoices, the billing cycle, the simulation) live in the workspace's end-to-end package.

mod foundation;
mod security;
