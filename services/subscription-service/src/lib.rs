//! The subscription service: accounts, plans, subscriptions, invoices and usage (port 8001).
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
use std::time::Duration;

use anyhow::Context as _;
use billing_auth::JwtIssuer;
use billing_config::{AppEnv, ServiceKind};
use billing_http::ratelimit::RateLimiter;
use billing_http::server::Routes;
use billing_queue::scheduler::Tick;
use billing_queue::worker::Consumer;
use billing_queue::{NewJob, Payload, Queue, QueueName, consumer};
use billing_runtime::{Infra, Service};
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use utoipa::OpenApi;

use crate::services::catalog::PlanCache;
use crate::services::usage::UsageFold;
use crate::state::AppState;

/// Migrations of the `billing_subscription` database, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/subscription");

#[derive(OpenApi)]
#[openapi(
    paths(
        routes::auth::register, routes::auth::login, routes::auth::refresh, routes::auth::me,
        routes::auth::set_role,
        routes::plans::list, routes::plans::get, routes::plans::create, routes::plans::update, routes::plans::deactivate,
        routes::subscriptions::create, routes::subscriptions::create_trial, routes::subscriptions::list_mine,
        routes::subscriptions::get, routes::subscriptions::change, routes::subscriptions::cancel,
        routes::subscriptions::reactivate, routes::subscriptions::pause, routes::subscriptions::resume,
        routes::subscriptions::events,
        routes::invoices::list_mine, routes::invoices::upcoming, routes::invoices::get, routes::invoices::pdf,
        routes::usage::use_feature, routes::usage::me, routes::usage::limits, routes::entitlements::me,
        routes::webhooks::payment,
    ),
    tags(
        (name = "auth", description = "Accounts and tokens (EdDSA JWT access tokens, rotating refresh tokens)"),
        (name = "plans", description = "The public plan catalog"),
        (name = "admin", description = "Catalog management (administrators)"),
        (name = "subscriptions", description = "Subscriptions: paid, trial, changes, cancellation"),
        (name = "invoices", description = "Invoices with sequential numbers INV-YYYYMM-NNNN"),
        (name = "usage", description = "Metered features, counted atomically per billing period"),
        (name = "webhooks", description = "Signed events from the payment service"),
    )
)]
struct ApiDoc;

/// The subscription service as the shared runtime runs it.
#[derive(Debug)]
pub struct SubscriptionService;

/// Builds the state every handler shares.
pub fn build_state(infra: &Infra) -> anyhow::Result<AppState> {
    let settings = infra.settings.clone();
    Ok(AppState {
        jwt: JwtIssuer::from_settings(&settings.jwt).map_err(|e| anyhow::anyhow!("{e}"))?,
        limiter: RateLimiter::new(infra.redis.clone()),
        revocations: billing_http::auth::Revocations::new(infra.redis.clone()),
        plans: PlanCache::default(),
        subscriptions: services::subscription_cache::SubscriptionCache::default(),
        payments: clients::PaymentClient::from_settings(&settings, infra.clock.clone())?,
        infra: infra.clone(),
    })
}

/// How often the scheduler asks for a usage fold.
const USAGE_SYNC_EVERY: Duration = Duration::from_secs(1);

impl Service for SubscriptionService {
    const KIND: ServiceKind = ServiceKind::Subscription;
    const MIGRATIONS: EmbeddedMigrations = MIGRATIONS;
    const QUEUES: &'static [QueueName] = &[
        QueueName::SubPaymentInitiation,
        QueueName::SubTrialPayment,
        QueueName::SubPlanChange,
        QueueName::SubUsageSync,
    ];

    fn openapi() -> utoipa::openapi::OpenApi {
        let mut doc = ApiDoc::openapi();
        routes::plans::document_rules(&mut doc);
        routes::subscriptions::document_rules(&mut doc);
        doc
    }

    fn description() -> &'static str {
        "Accounts, plan catalog, subscriptions, invoices and usage metering. Every response is JSON in the \
         success or error envelope (health routes excepted), carries X-Request-Id, and renders money as strings \
         with the currency's minor digits. Amounts in requests are read exactly from JSON numbers or strings. \
         Write bodies are closed: an unknown field is a 422 naming it. Another user's subscription or invoice is \
         a 404."
    }

    type State = AppState;

    fn state(infra: &Infra) -> anyhow::Result<AppState> {
        build_state(infra)
    }

    fn routes(state: &AppState) -> Routes {
        billing_runtime::routes_with(state, routes::configure)
    }

    fn consumers(infra: &Infra, state: &AppState) -> anyhow::Result<Vec<Consumer>> {
        Ok(vec![
            consumer::<jobs::usage::UsageSync>(&infra.redis, state.clone()),
            consumer::<jobs::charges::Charge>(&infra.redis, state.clone()),
            consumer::<jobs::trials::TrialPayment>(&infra.redis, state.clone()),
            consumer::<jobs::plan_change::PlanChange>(&infra.redis, state.clone()),
        ])
    }

    fn ticks(infra: &Infra, state: &AppState) -> Vec<Tick> {
        let queue = Queue::new(infra.redis.clone(), QueueName::SubUsageSync);
        let state = state.clone();
        let billing = Tick {
            name: "billing:cycle",
            every: infra.settings.billing.tick_every,
            lease: Duration::from_secs(300),
            run: Arc::new(move || {
                let state = state.clone();
                Box::pin(async move {
                    let report = services::billing::run_due(&state).await.map_err(|e| e.to_string())?;
                    if report != services::billing::Report::default() {
                        tracing::info!(?report, "billing cycle tick");
                    }
                    Ok(())
                })
            }),
        };
        vec![
            billing,
            Tick {
                name: "usage:sync",
                every: USAGE_SYNC_EVERY,
                lease: Duration::from_secs(30),
                run: Arc::new(move || {
                    let queue = queue.clone();
                    Box::pin(async move {
                        // One fold request per second at most: the id is the second, so replicas enqueue it once.
                        let second = u128::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
                        let job = NewJob {
                            id: uuid::Uuid::from_u128(0x5553_4147_0000_0000_0000_0000_0000_0000 | second),
                            ..UsageFold {}.job(format!("usage-sync-{second}"))
                        };
                        queue.enqueue(job, None).await.map(|_| ()).map_err(|e| e.to_string())
                    })
                }),
            },
        ]
    }

    async fn seed(infra: Infra) -> anyhow::Result<()> {
        let mut conn = infra.db.get().await.context("connecting to the database")?;
        let added = services::seed::seed_catalog(&mut conn).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        println!("seed: plan catalog ready ({added} plans added)");
        if matches!(infra.settings.app_env, AppEnv::Development | AppEnv::Test) {
            let (email, password) = (services::seed::DEV_ADMIN_EMAIL, services::seed::DEV_ADMIN_PASSWORD);
            services::seed::ensure_admin(&mut conn, email, password).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("seed: development admin {email} / {password}");
        }
        Ok(())
    }

    async fn create_admin(infra: Infra, email: String, password: String) -> anyhow::Result<()> {
        let mut conn = infra.db.get().await.context("connecting to the database")?;
        let created =
            services::seed::ensure_admin(&mut conn, &email, &password).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        println!("{}", if created { format!("admin {email} created") } else { format!("{email} is now an admin") });
        Ok(())
    }
}
