//! Prometheus metrics: one recorder per process, rendered by `GET /metrics`.

use std::sync::OnceLock;

use std::fmt::Write as _;

use actix_web::{HttpRequest, HttpResponse, web};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::error::FinalBody;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Installs the global recorder once (later calls return the same handle).
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(handle) => {
                    keep_up(handle.clone());
                    handle
                }
                // Another recorder was installed first (only possible in tests): render an empty registry.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

/// How often recorded histogram samples are folded into their buckets between scrapes.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Folds histogram samples into their buckets every few seconds. The recorder keeps every sample until an upkeep
/// runs, and only a scrape ran one: without a scraper every request's latency stayed in memory (a 10-minute soak
/// grew the service by 36 MiB, linearly).
fn keep_up(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new().name("metrics-upkeep".to_owned()).spawn(move || {
        loop {
            std::thread::sleep(UPKEEP_EVERY);
            handle.run_upkeep();
        }
    });
    if let Err(err) = spawned {
        tracing::warn!(error = %err, "metrics upkeep thread did not start: histograms are folded at scrapes only");
    }
}

/// Queue depths and job outcomes, read from Redis at scrape time: outcomes are counted by the queue scripts
/// across every worker process, so any replica of the service reports the whole queue.
async fn queue_metrics(req: &HttpRequest) -> String {
    let Some(queues) = req.app_data::<web::Data<crate::queues::Queues>>() else { return String::new() };
    let mut depth = String::from("# HELP queue_depth Jobs in each state.\n# TYPE queue_depth gauge\n");
    let mut jobs =
        String::from("# HELP queue_jobs_total Job outcomes, across every worker.\n# TYPE queue_jobs_total counter\n");
    for queue in queues.0.iter() {
        let name = queue.name();
        if let Ok(s) = queue.stats().await {
            for (state, n) in
                [("pending", s.pending), ("processing", s.processing), ("delayed", s.delayed), ("failed", s.failed)]
            {
                let _ = writeln!(depth, "queue_depth{{queue=\"{name}\",state=\"{state}\"}} {n}");
            }
        }
        if let Ok(outcomes) = queue.outcomes().await {
            for (outcome, n) in outcomes {
                let _ = writeln!(jobs, "queue_jobs_total{{queue=\"{name}\",outcome=\"{outcome}\"}} {n}");
            }
        }
    }
    depth + &jobs
}

/// `GET /metrics` in the Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub async fn render(req: HttpRequest, handle: web::Data<PrometheusHandle>) -> HttpResponse {
    handle.run_upkeep();
    let body = handle.render() + "\n" + &queue_metrics(&req).await;
    let mut res = HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(body);
    res.extensions_mut().insert(FinalBody);
    res
}
