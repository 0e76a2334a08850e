//! The payment service: payments through the gateway, refunds, history and saved payment methods (port 8002).
//!
//! A library so tests and the benchmark can build the same app the binary serves; `main.rs` only
//! hands control to [`billing_runtime::main`].

pub mod gateway;

use std::sync::Arc;

use billing_config::ServiceKind;
use billing_http::server::Routes;
use billing_queue::worker::{self, Consumer};
use billing_queue::{Queue, QueueName};
use billing_runtime::{Infra, Service};
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use utoipa::OpenApi;

/// Migrations of the `billing_payment` database, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/payment");

#[derive(OpenApi)]
#[openapi(info(title = "payment-service"))]
struct ApiDoc;

/// The payment service as the shared runtime runs it.
#[derive(Debug)]
pub struct PaymentService;

impl Service for PaymentService {
    const KIND: ServiceKind = ServiceKind::Payment;
    const MIGRATIONS: EmbeddedMigrations = MIGRATIONS;
    const QUEUES: &'static [QueueName] = &[QueueName::PaySubscriptionUpdate, QueueName::PayRefundInitiation];

    fn openapi() -> utoipa::openapi::OpenApi {
        ApiDoc::openapi()
    }

    fn description() -> &'static str {
        "Payments through the gateway, refunds, payment history and saved payment methods. The card number and \
         CVV are never stored, logged, queued or sent anywhere but the gateway."
    }

    fn routes(_infra: &Infra) -> anyhow::Result<Routes> {
        Ok(Arc::new(|_cfg| {}))
    }

    fn consumers(infra: &Infra) -> anyhow::Result<Vec<Consumer>> {
        let queue = |name| Queue::new(infra.redis.clone(), name);
        Ok(vec![
            Consumer {
                queue: queue(QueueName::PaySubscriptionUpdate),
                handler: worker::not_implemented("webhook delivery"),
                concurrency: 8,
            },
            Consumer {
                queue: queue(QueueName::PayRefundInitiation),
                handler: worker::not_implemented("refunds"),
                concurrency: 4,
            },
        ])
    }
}
