//! The payment service: payments through the gateway, refunds, history and saved payment methods (port 8002).
//!
//! A library so tests and the benchmark can build the same app the binary serves; `main.rs` only
//! hands control to [`billing_runtime::main`].

pub mod clients;
pub mod db;
pub mod error;
pub mod jobs;
pub mod routes;
pub mod services;
pub mod state;

use std::sync::Arc;

use crate::clients::SubscriptionClient;
use crate::clients::gateway::http::HttpGateway;
use crate::state::AppState;

use billing_config::ServiceKind;
use billing_http::server::Routes;
use billing_queue::worker::Consumer;
use billing_queue::{QueueName, consumer};
use billing_runtime::{Infra, Service};
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use utoipa::OpenApi;

/// Migrations of the `billing_payment` database, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/payment");

#[derive(OpenApi)]
#[openapi(
    info(title = "payment-service"),
    paths(routes::payments::process, routes::payments::refund, routes::payments::history, routes::payments::get, routes::operations::list, routes::operations::redeliver, routes::methods::save, routes::methods::list, routes::methods::delete, routes::methods::make_default, routes::operations::gateway),
    tags(
        (name = "payments", description = "Card payments of invoices, with Idempotency-Key"),
        (name = "payment methods", description = "Saved cards (token, brand, last 4, expiry); the default (chosen, else the newest) is what renewals charge"),
        (name = "webhooks", description = "Signed events from the payment gateway"),
    )
)]
struct ApiDoc;

/// How long an attempt may stay `pending` (its answer lost) before the reconciler asks the gateway about it.
pub const RECONCILE_AFTER: chrono::Duration = chrono::Duration::minutes(2);

/// Builds the state every handler and job shares.
pub fn build_state(infra: &Infra) -> anyhow::Result<AppState> {
    Ok(AppState {
        infra: infra.clone(),
        gateway: Arc::new(HttpGateway::from_settings(
            infra.settings.gateway.as_ref().ok_or_else(|| anyhow::anyhow!("the payment service needs GATEWAY_URL"))?,
        )?),
        subscriptions: SubscriptionClient::from_settings(&infra.settings, infra.clock.clone())?,
        // Events are signed with the first webhook secret; an answer later than 10 s is retried.
        events: billing_http::signed::SignedClient::new(
            &infra.settings.services.subscription_url,
            billing_http::signed::Keys::new(&infra.settings.signing.webhook),
            infra.clock.clone(),
            std::time::Duration::from_secs(10),
        )?,
    })
}

/// The payment service as the shared runtime runs it.
#[derive(Debug)]
pub struct PaymentService;

impl Service for PaymentService {
    const KIND: ServiceKind = ServiceKind::Payment;
    const MIGRATIONS: EmbeddedMigrations = MIGRATIONS;
    const QUEUES: &'static [QueueName] = &[QueueName::PaySubscriptionUpdate, QueueName::PayRefundInitiation];

    fn openapi() -> utoipa::openapi::OpenApi {
        let mut doc = ApiDoc::openapi();
        routes::document_rules(&mut doc);
        doc
    }

    fn extra_health_checks(infra: &Infra) -> Vec<Arc<dyn billing_http::health::HealthCheck>> {
        match infra.settings.gateway.as_ref().map(HttpGateway::from_settings) {
            Some(Ok(gateway)) => vec![Arc::new(clients::gateway::http::GatewayCheck(gateway))],
            _ => Vec::new(),
        }
    }

    fn description() -> &'static str {
        "Payments through the gateway, refunds, payment history and saved payment methods. The card number and \
         CVV are never stored, logged, queued or sent anywhere but the gateway."
    }

    type State = AppState;

    fn state(infra: &Infra) -> anyhow::Result<AppState> {
        build_state(infra)
    }

    fn routes(state: &AppState) -> Routes {
        billing_runtime::routes_with(state, routes::configure)
    }

    fn ticks(_infra: &Infra, state: &AppState) -> Vec<billing_queue::scheduler::Tick> {
        let state = state.clone();
        vec![billing_queue::scheduler::Tick {
            name: "payments:reconcile",
            every: std::time::Duration::from_secs(30),
            lease: std::time::Duration::from_secs(120),
            run: Arc::new(move || {
                let state = state.clone();
                Box::pin(async move {
                    let settled = services::payments::reconcile_pending(&state, RECONCILE_AFTER)
                        .await
                        .map_err(|e| e.to_string())?;
                    if settled > 0 {
                        tracing::warn!(settled, "pending payments reconciled with the gateway");
                    }
                    Ok(())
                })
            }),
        }]
    }

    fn consumers(infra: &Infra, state: &AppState) -> anyhow::Result<Vec<Consumer>> {
        Ok(vec![
            consumer::<jobs::webhooks::DeliverEvent>(&infra.redis, state.clone()),
            consumer::<jobs::refunds::ProcessRefund>(&infra.redis, state.clone()),
        ])
    }
}
