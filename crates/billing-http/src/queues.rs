//! Queue operations: stats for `/v1/health/detailed` and the admin routes to inspect, requeue and drop failed jobs.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use billing_queue::{FailedJob, Queue, QueueStats};
use futures_util::future::BoxFuture;
use serde::Serialize;
use utoipa::ToSchema;

use crate::health::{CheckOutcome, HealthCheck};
use crate::{AdminUser, ApiError, ok};

/// The queues a service owns.
#[derive(Debug, Clone)]
pub struct Queues(pub Arc<Vec<Queue>>);

impl Queues {
    fn find(&self, name: &str) -> Result<&Queue, ApiError> {
        self.0.iter().find(|q| q.name() == name).ok_or_else(|| ApiError::not_found("queue_not_found", "no such queue"))
    }
}

/// `queues` in `/v1/health/detailed`: every queue's counts; unhealthy when Redis cannot say.
pub struct QueueCheck(pub Queues);

impl HealthCheck for QueueCheck {
    fn name(&self) -> &'static str {
        "queues"
    }

    fn check(&self) -> BoxFuture<'_, CheckOutcome> {
        Box::pin(async move {
            let started = std::time::Instant::now();
            let mut details = serde_json::Map::new();
            for queue in self.0.0.iter() {
                match queue.stats().await {
                    Ok(stats) => {
                        details.insert(queue.name().to_owned(), serde_json::to_value(stats).unwrap_or_default());
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "queue stats unavailable");
                        return CheckOutcome::unhealthy(started.elapsed(), "queue stats unavailable");
                    }
                }
            }
            let mut outcome = CheckOutcome::healthy(started.elapsed());
            outcome.details = Some(serde_json::Value::Object(details));
            outcome
        })
    }
}

/// One queue's counts and its most recent failed jobs.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueReport {
    pub name: String,
    #[schema(value_type = Object)]
    pub stats: QueueStats,
    /// The 20 most recent failed jobs with their last error.
    #[schema(value_type = Vec<Object>)]
    pub failed_jobs: Vec<FailedJob>,
}

/// Every queue of this service with its counts and recent failures.
#[utoipa::path(get, path = "/v1/admin/queues", tag = "operations", security(("bearer" = [])),
    responses(
        (status = 200, description = "Queues", body = Vec<QueueReport>),
        (status = 403, description = "Not an administrator", body = crate::error::ErrorEnvelope)))]
pub async fn list(_admin: AdminUser, queues: web::Data<Queues>) -> Result<HttpResponse, ApiError> {
    let mut reports = Vec::new();
    for queue in queues.0.iter() {
        let stats = queue.stats().await.map_err(|e| ApiError::unavailable(&e))?;
        let failed_jobs = queue.failed_page(0, 20).await.map_err(|e| ApiError::unavailable(&e))?;
        reports.push(QueueReport { name: queue.name().to_owned(), stats, failed_jobs });
    }
    Ok(ok(reports, "queues"))
}

/// Put a failed job back on its queue (attempts reset).
#[utoipa::path(post, path = "/v1/admin/queues/{queue}/failed/{id}/requeue", tag = "operations", security(("bearer" = [])),
    params(("queue" = String, Path, description = "Queue name, e.g. q:sub:payment_initiation"), ("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "Requeued"),
        (status = 404, description = "No such queue or failed job", body = crate::error::ErrorEnvelope)))]
pub async fn requeue(
    _admin: AdminUser,
    queues: web::Data<Queues>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    on_failed_job(&queues, path.into_inner(), FailedAction::Requeue).await
}

/// Delete a failed job.
#[utoipa::path(delete, path = "/v1/admin/queues/{queue}/failed/{id}", tag = "operations", security(("bearer" = [])),
    params(("queue" = String, Path, description = "Queue name"), ("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "Dropped"),
        (status = 404, description = "No such queue or failed job", body = crate::error::ErrorEnvelope)))]
pub async fn drop_failed(
    _admin: AdminUser,
    queues: web::Data<Queues>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    on_failed_job(&queues, path.into_inner(), FailedAction::Drop).await
}

#[derive(Debug, Clone, Copy)]
enum FailedAction {
    Requeue,
    Drop,
}

/// Requeues or drops one failed job of one queue; 404 when either does not exist.
async fn on_failed_job(
    queues: &Queues,
    (name, id): (String, String),
    action: FailedAction,
) -> Result<HttpResponse, ApiError> {
    let queue = queues.find(&name)?;
    let (done, status) = match action {
        FailedAction::Requeue => (queue.requeue_failed(&id).await, "requeued"),
        FailedAction::Drop => (queue.drop_failed(&id).await, "dropped"),
    };
    if !done.map_err(|e| ApiError::unavailable(&e))? {
        return Err(ApiError::not_found("job_not_found", "no such failed job"));
    }
    tracing::info!(queue = %name, job_id = %id, status, "failed job handled by an administrator");
    Ok(ok(serde_json::json!({"queue": name, "id": id, "status": status}), &format!("job {status}")))
}

/// Registers the admin queue routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/admin/queues").route(web::get().to(list)))
        .service(web::resource("/v1/admin/queues/{queue}/failed/{id}/requeue").route(web::post().to(requeue)))
        .service(web::resource("/v1/admin/queues/{queue}/failed/{id}").route(web::delete().to(drop_failed)));
}
