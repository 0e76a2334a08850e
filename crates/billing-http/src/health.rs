//! `GET /v1/health` (the process answers) and `GET /v1/health/detailed` (its dependencies answer).
//!
//! Health bodies are flat (not in the success envelope): load balancers and orchestrators read them, and the
//! detailed body must carry the checks with its 503.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use billing_infra::{DbPool, Redis};
use futures_util::future::{BoxFuture, join_all};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::FinalBody;

/// How long one dependency may take before it counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The result of one dependency check.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CheckOutcome {
    /// `healthy` or `unhealthy`.
    #[schema(example = "healthy")]
    pub status: &'static str,
    #[schema(example = 0.42)]
    pub response_time_ms: f64,
    /// A short, non-sensitive reason when unhealthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}

impl CheckOutcome {
    /// A passing check that took `elapsed`.
    pub fn healthy(elapsed: Duration) -> Self {
        Self { status: "healthy", response_time_ms: round_ms(elapsed), error: None, details: None }
    }

    /// A failing check; `reason` is shown to callers, so it must not carry internals.
    pub fn unhealthy(elapsed: Duration, reason: &str) -> Self {
        Self { status: "unhealthy", response_time_ms: round_ms(elapsed), error: Some(reason.to_owned()), details: None }
    }

    fn is_healthy(&self) -> bool {
        self.status == "healthy"
    }
}

fn round_ms(elapsed: Duration) -> f64 {
    (elapsed.as_secs_f64() * 100_000.0).round() / 100.0
}

/// A dependency `GET /v1/health/detailed` reports on.
pub trait HealthCheck: Send + Sync + 'static {
    /// The key under `checks`.
    fn name(&self) -> &'static str;
    /// Runs the check (bounded by the caller's timeout).
    fn check(&self) -> BoxFuture<'_, CheckOutcome>;
}

/// PostgreSQL: borrow a pooled connection and `SELECT 1`.
pub struct DatabaseCheck(pub DbPool);

impl HealthCheck for DatabaseCheck {
    fn name(&self) -> &'static str {
        "database"
    }

    fn check(&self) -> BoxFuture<'_, CheckOutcome> {
        Box::pin(async move {
            let started = std::time::Instant::now();
            match billing_infra::db::ping(&self.0).await {
                Ok(elapsed) => CheckOutcome::healthy(elapsed),
                Err(err) => {
                    tracing::warn!(error = %err, "database health check failed");
                    CheckOutcome::unhealthy(started.elapsed(), "database unreachable")
                }
            }
        })
    }
}

/// Redis: `PING`.
pub struct RedisCheck(pub Redis);

impl HealthCheck for RedisCheck {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn check(&self) -> BoxFuture<'_, CheckOutcome> {
        Box::pin(async move {
            let started = std::time::Instant::now();
            match self.0.ping().await {
                Ok(elapsed) => CheckOutcome::healthy(elapsed),
                Err(err) => {
                    tracing::warn!(error = %err, "redis health check failed");
                    CheckOutcome::unhealthy(started.elapsed(), "redis unreachable")
                }
            }
        })
    }
}

/// The checks of one service.
#[derive(Clone)]
pub struct Health {
    service: &'static str,
    version: &'static str,
    checks: Vec<Arc<dyn HealthCheck>>,
}

impl Health {
    /// The health of `service` at `version`, checking `checks`.
    pub fn new(service: &'static str, version: &'static str, checks: Vec<Arc<dyn HealthCheck>>) -> Self {
        Self { service, version, checks }
    }

    /// Runs every check concurrently, each bounded by a timeout.
    pub async fn run(&self) -> (bool, BTreeMap<&'static str, CheckOutcome>) {
        let outcomes = join_all(self.checks.iter().map(|check| async move {
            let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check.check()).await {
                Ok(outcome) => outcome,
                Err(_) => CheckOutcome::unhealthy(CHECK_TIMEOUT, "timed out"),
            };
            (check.name(), outcome)
        }))
        .await;
        let healthy = outcomes.iter().all(|(_, o)| o.is_healthy());
        (healthy, outcomes.into_iter().collect())
    }
}

/// `GET /v1/health` body.
#[derive(Debug, Serialize, ToSchema)]
pub struct BasicHealth {
    #[schema(example = "healthy")]
    pub status: &'static str,
    #[schema(example = "subscription-service")]
    pub service: &'static str,
    #[schema(example = "0.1.0")]
    pub version: &'static str,
}

/// `GET /v1/health/detailed` body.
#[derive(Debug, Serialize, ToSchema)]
pub struct DetailedHealth {
    /// `healthy` when every check passes, else `unhealthy` (and the status code is 503).
    #[schema(example = "healthy")]
    pub status: &'static str,
    pub service: &'static str,
    pub version: &'static str,
    #[schema(example = "2026-01-01T00:00:00Z")]
    pub timestamp: String,
    pub checks: BTreeMap<&'static str, CheckOutcome>,
}

fn final_json(status: StatusCode, body: &impl Serialize) -> HttpResponse {
    let mut res = HttpResponse::build(status).json(body);
    res.extensions_mut().insert(FinalBody);
    res
}

/// The process is up; dependencies are not touched.
#[utoipa::path(get, path = "/v1/health", tag = "health",
    responses((status = 200, description = "The process answers", body = BasicHealth)))]
pub async fn basic(health: web::Data<Health>) -> HttpResponse {
    final_json(StatusCode::OK, &BasicHealth { status: "healthy", service: health.service, version: health.version })
}

/// Every dependency with its response time; 503 when one is down.
#[utoipa::path(get, path = "/v1/health/detailed", tag = "health",
    responses(
        (status = 200, description = "Every dependency answers", body = DetailedHealth),
        (status = 503, description = "At least one dependency is down", body = DetailedHealth)))]
pub async fn detailed(health: web::Data<Health>) -> HttpResponse {
    let (healthy, checks) = health.run().await;
    let body = DetailedHealth {
        status: if healthy { "healthy" } else { "unhealthy" },
        service: health.service,
        version: health.version,
        timestamp: crate::rfc3339(chrono::Utc::now()),
        checks,
    };
    final_json(if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, &body)
}

/// Registers both health routes (as resources, so another method gets 405, not 404).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/health").route(web::get().to(basic)))
        .service(web::resource("/v1/health/detailed").route(web::get().to(detailed)));
}
