//! The subscription service: accounts, plans, subscriptions, invoices and usage (port 8001).
//!
//! A library so tests and the benchmark can build the same app the binary serves; `main.rs` only
//! hands control to [`billing_runtime::main`].

use std::sync::Arc;

use billing_config::ServiceKind;
use billing_http::server::Routes;
use billing_runtime::{Infra, Service};
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use utoipa::OpenApi;

/// Migrations of the `billing_subscription` database, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/subscription");

#[derive(OpenApi)]
#[openapi(info(title = "subscription-service"))]
struct ApiDoc;

/// The subscription service as the shared runtime runs it.
#[derive(Debug)]
pub struct SubscriptionService;

impl Service for SubscriptionService {
    const KIND: ServiceKind = ServiceKind::Subscription;
    const MIGRATIONS: EmbeddedMigrations = MIGRATIONS;

    fn openapi() -> utoipa::openapi::OpenApi {
        ApiDoc::openapi()
    }

    fn description() -> &'static str {
        "Accounts, plan catalog, subscriptions, invoices and usage metering. Every response is JSON in the \
         success or error envelope (health routes excepted), carries X-Request-Id, and renders money as strings \
         with the currency's minor digits."
    }

    fn routes(_infra: &Infra) -> anyhow::Result<Routes> {
        Ok(Arc::new(|_cfg| {}))
    }
}
