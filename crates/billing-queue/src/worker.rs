//! Consumers: apalis workers over our Redis storage.
//!
//! apalis runs them (its `Monitor`, concurrency limit, tracing and catch-panic layers, graceful shutdown); the
//! storage is ours: a `CustomBackend` whose fetcher claims with the Lua scripts, sleeps on the queue's wake list
//! when idle (no busy polling: new work is picked up at once), and backs off and retries when Redis is down
//! (an outage pauses the worker; it never ends it). Each job runs under a timeout shorter than its visibility
//! timeout, with panics caught, and is acked or nacked by its outcome; a job whose worker dies is handed out
//! again by the reaper once its visibility timeout passes.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{Monitor, WorkerBuilder, WorkerBuilderExt};
use apalis_core::backend::custom::BackendBuilder;
use apalis_core::error::BoxDynError;
use apalis_core::task::Task;
use apalis_core::task::task_id::TaskId;
use apalis_core::worker::context::WorkerContext;
use futures_util::{FutureExt, SinkExt, StreamExt, sink, stream};
use tracing::Instrument;

use crate::{Claimed, Envelope, NackOutcome, Queue};

/// Why a job did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// Worth another try, after the queue's backoff.
    Retry(String),
    /// Will never succeed: straight to the failed list.
    Permanent(String),
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Retry(e) => write!(f, "retryable: {e}"),
            Self::Permanent(e) => write!(f, "permanent: {e}"),
        }
    }
}

/// The future a handler returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send>>;
/// A job handler: idempotent on the envelope's `idempotency_key`, since a job may be delivered more than once.
pub type Handler = Arc<dyn Fn(Envelope) -> HandlerFuture + Send + Sync>;

/// One queue and what handles its jobs.
#[derive(Clone)]
pub struct Consumer {
    pub queue: Queue,
    pub handler: Handler,
    /// Jobs of this queue run at once in this process.
    pub concurrency: usize,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer").field("queue", &self.queue.name()).field("concurrency", &self.concurrency).finish()
    }
}

/// Runs one claimed job and acks or nacks it, inside a span naming the job.
async fn execute(consumer: &Consumer, claimed: Claimed) {
    let envelope = &claimed.envelope;
    let span = tracing::info_span!("job", queue = consumer.queue.name(), job_id = %envelope.id, action = %envelope.action,
        attempt = envelope.attempts, correlation_id = envelope.correlation_id.as_deref().unwrap_or(""));
    // Instrumented, not entered: a guard held across `.await` would leak the span into other tasks on the thread.
    run_and_settle(consumer, claimed).instrument(span).await;
}

async fn run_and_settle(consumer: &Consumer, claimed: Claimed) {
    let queue = &consumer.queue;
    let envelope = claimed.envelope.clone();
    // Finish (or give up) well before the visibility timeout, so the job is not handed out twice meanwhile.
    let budget = queue.policy().visibility_timeout.mul_f64(0.8);
    let run = AssertUnwindSafe((consumer.handler)(envelope)).catch_unwind();
    let result = match tokio::time::timeout(budget, run).await {
        Ok(Ok(result)) => result,
        Ok(Err(_panic)) => Err(JobError::Retry("the handler panicked".to_owned())),
        Err(_) => Err(JobError::Retry(format!("timed out after {budget:?}"))),
    };
    let acked = match &result {
        Ok(()) => queue.ack(&claimed).await.map(|held| if held { "succeeded" } else { "lost" }),
        Err(err) => {
            let permanent = matches!(err, JobError::Permanent(_));
            queue.nack(&claimed, &err.to_string(), permanent).await.map(|outcome| match outcome {
                NackOutcome::Retry(_) => "retried",
                NackOutcome::Failed => "failed",
                NackOutcome::NotHeld => "lost",
            })
        }
    };
    match acked {
        // Outcomes are counted in Redis by the scripts, across every worker process (see `Queue::outcomes`).
        Ok(outcome) => match (&result, outcome) {
            (Ok(()), _) => tracing::debug!("job succeeded"),
            (Err(err), "failed") => tracing::error!(error = %err, "job failed for good"),
            (Err(err), _) => tracing::warn!(error = %err, outcome, "job did not succeed"),
        },
        // Redis is down: the claim expires and the reaper hands the job out again. Nothing is lost.
        Err(err) => tracing::warn!(error = %err, "could not record the job's outcome; it will be redelivered"),
    }
}

/// How many jobs a fetch claims at once: enough to save round trips, few enough that none waits long in hand.
const CLAIM_BATCH: usize = 16;

struct Fetch {
    queue: Queue,
    worker: WorkerContext,
    waiter: Option<redis::aio::MultiplexedConnection>,
    backoff: Duration,
    buffer: std::collections::VecDeque<Claimed>,
    batch: usize,
}

impl Fetch {
    /// Gives back every claimed job that has not started.
    async fn release_buffer(&mut self) {
        for claimed in self.buffer.drain(..) {
            if let Err(err) = self.queue.release(&claimed).await {
                tracing::warn!(error = %err, job_id = %claimed.envelope.id, "could not release a job; it returns after its visibility timeout");
            }
        }
    }
}

impl Drop for Fetch {
    fn drop(&mut self) {
        // The worker stopped polling with jobs still buffered: release them now rather than after their
        // visibility timeout (best effort; the reaper covers a failure).
        if self.buffer.is_empty() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (queue, buffer) = (self.queue.clone(), std::mem::take(&mut self.buffer));
            runtime.spawn(async move {
                for claimed in buffer {
                    let _ = queue.release(&claimed).await;
                }
            });
        }
    }
}

/// The claims of one worker: a stream that never ends while the worker runs and never busy-polls.
fn claims(
    queue: Queue,
    worker: WorkerContext,
    batch: usize,
) -> impl futures_util::Stream<Item = Result<Option<Task<Claimed>>, BoxDynError>> {
    let state = Fetch { queue, worker, waiter: None, backoff: Duration::ZERO, buffer: Default::default(), batch };
    stream::unfold(state, |mut f| async move {
        loop {
            if f.worker.is_shutting_down() {
                tracing::debug!(queue = f.queue.name(), "worker shutting down: no more claims");
                f.release_buffer().await;
                return None;
            }
            if let Some(claimed) = f.buffer.pop_front() {
                // apalis identifies tasks (its tracing layer requires it): ours carry the job id.
                let id = TaskId::String(claimed.envelope.id.to_string());
                let task = Task::new(claimed).into_builder().task_id(id).build();
                return Some((Ok(Some(task)), f));
            }
            if !f.backoff.is_zero() {
                tokio::time::sleep(f.backoff).await;
            }
            match f.queue.claim_batch(f.batch).await {
                Ok(claimed) if !claimed.is_empty() => {
                    f.backoff = Duration::ZERO;
                    f.buffer.extend(claimed);
                }
                Ok(_) => {
                    f.backoff = Duration::ZERO;
                    if f.waiter.is_none() {
                        f.waiter = f.queue.redis().dedicated().await.ok();
                    }
                    let woke = match f.waiter.as_mut() {
                        Some(conn) => f.queue.wait_for_work(conn, Duration::from_secs(1)).await.is_ok(),
                        None => false,
                    };
                    if !woke {
                        f.waiter = None;
                        f.backoff = Duration::from_millis(500);
                    }
                }
                Err(err) => {
                    f.backoff = (f.backoff * 2).clamp(Duration::from_millis(200), Duration::from_secs(5));
                    tracing::warn!(queue = f.queue.name(), error = %err, retry_in = ?f.backoff, "cannot claim jobs; is Redis down?");
                    f.waiter = None;
                }
            }
        }
    })
}

/// Runs every consumer until `shutdown` resolves; jobs in hand are finished first (or, when the process is killed,
/// handed out again after their visibility timeout).
pub async fn run(
    consumers: Vec<Consumer>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BoxDynError> {
    let mut monitor = Monitor::new();
    for consumer in consumers {
        let name = format!("{}#{}", consumer.queue.name(), uuid::Uuid::new_v4().simple());
        monitor = monitor.register(move |_| {
            let consumer = consumer.clone();
            let concurrency = consumer.concurrency.max(1);
            let backstop = consumer.queue.policy().visibility_timeout.mul_f64(0.95);
            let backend = BackendBuilder::new()
                .database(consumer.queue.clone())
                // Never hold more jobs than can run at once: a claimed job's visibility clock is already ticking.
                .fetcher(move |queue: &mut Queue, _: &(), worker: &WorkerContext| {
                    claims(queue.clone(), worker.clone(), CLAIM_BATCH.min(concurrency)).boxed()
                })
                // Jobs are enqueued with `Queue::enqueue` (or through the outbox), never through apalis.
                .sink(|_, _| sink::drain::<Task<Claimed>>().sink_map_err(|never| -> BoxDynError { match never {} }))
                .build()
                .unwrap_or_else(|_| unreachable!("database, fetcher and sink are all set"));
            let service = tower::service_fn(move |task: Task<Claimed>| {
                let consumer = consumer.clone();
                async move {
                    execute(&consumer, task.args).await;
                    Ok::<(), BoxDynError>(())
                }
            });
            WorkerBuilder::new(name.clone())
                .backend(backend)
                .enable_tracing()
                .catch_panic()
                // A backstop behind the per-job timeout in `execute` (which nacks properly).
                .timeout(backstop)
                .concurrency(concurrency)
                .build(service)
        });
    }
    monitor
        .shutdown_timeout(Duration::from_secs(30))
        .run_with_signal(async move {
            shutdown.await;
            Ok(())
        })
        .await
        .map_err(|e| Box::new(e) as BoxDynError)
}
