//! `queue-probe`: a worker process over one queue whose handler records what it does in Redis, for the tests
//! that kill workers and run several of them. Not part of the product.
//!
//! Handler: sleeps `payload.sleep_ms` if given (only on attempt `payload.sleep_attempt` when that is set), fails with a retryable error while `payload.fail_times` exceeds
//! the attempt, and records one effect per idempotency key (`SET NX`), counting every delivery too.

use std::sync::Arc;
use std::time::Duration;

use billing_infra::Redis;
use billing_queue::scheduler;
use billing_queue::worker::{self, Consumer, JobError};
use billing_queue::{Policy, Queue};

fn arg(name: &str) -> Option<String> {
    let mut args = std::env::args();
    args.find(|a| a == name).and_then(|_| args.next())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let url = arg("--redis").ok_or("--redis URL")?;
    let prefix = arg("--prefix").unwrap_or_default();
    let name = arg("--queue").unwrap_or_else(|| "q:test:probe".to_owned());
    let visibility = Duration::from_millis(arg("--visibility-ms").and_then(|v| v.parse().ok()).unwrap_or(2000));
    let concurrency = arg("--concurrency").and_then(|v| v.parse().ok()).unwrap_or(8);
    let redis = Redis::connect_lazy_to(&url, &prefix, Duration::from_secs(1), Duration::from_secs(5))?;
    let queue = Queue::with_policy(redis.clone(), &name, Policy::probe(visibility));
    let recorder = redis.clone();
    let handler: worker::Handler = Arc::new(move |envelope| {
        let redis = recorder.clone();
        Box::pin(async move {
            let mut conn = redis.conn();
            let _: () = redis::cmd("HINCRBY")
                .arg(redis.key("probe:deliveries"))
                .arg(envelope.id.to_string())
                .arg(1)
                .query_async(&mut conn)
                .await
                .map_err(|e| JobError::Retry(e.to_string()))?;
            let _: () = redis::cmd("HSET")
                .arg(redis.key("probe:attempts"))
                .arg(envelope.id.to_string())
                .arg(envelope.attempts)
                .query_async(&mut conn)
                .await
                .map_err(|e| JobError::Retry(e.to_string()))?;
            let sleep_now =
                envelope.payload["sleep_attempt"].as_u64().is_none_or(|a| a == u64::from(envelope.attempts));
            if let Some(ms) = envelope.payload["sleep_ms"].as_u64().filter(|_| sleep_now) {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            if envelope.payload["fail_times"].as_u64().is_some_and(|n| u64::from(envelope.attempts) <= n) {
                return Err(JobError::Retry("asked to fail".to_owned()));
            }
            // The effect, once per idempotency key however often the job is delivered.
            let first: Option<String> = redis::cmd("SET")
                .arg(redis.key(&format!("probe:done:{}", envelope.idempotency_key)))
                .arg(1)
                .arg("NX")
                .query_async(&mut conn)
                .await
                .map_err(|e| JobError::Retry(e.to_string()))?;
            if first.is_some() {
                let _: () = redis::cmd("INCR")
                    .arg(redis.key("probe:effects"))
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| JobError::Retry(e.to_string()))?;
            }
            Ok(())
        })
    });
    let consumer = Consumer { queue: queue.clone(), handler, concurrency };
    let ticks = scheduler::queue_ticks(vec![queue]);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let sched = tokio::spawn(scheduler::run(redis, "queue-probe", ticks, std::future::pending::<()>()));
    eprintln!("queue-probe ready");
    worker::run(vec![consumer], shutdown).await?;
    sched.abort();
    Ok(())
}
