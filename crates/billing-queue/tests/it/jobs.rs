//! Typed jobs: a payload type's jobs reach its handler as that type, and a payload of another shape fails at once,
//! named, without reaching it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use billing_infra::Redis;
use billing_queue::worker::JobError;
use billing_queue::{Envelope, Job, NewJob, Payload, Queue, QueueName, consumer};
use billing_testkit::{TestRedis, poll_until};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Serialize, Deserialize)]
struct Add {
    n: u32,
}

impl Payload for Add {
    const QUEUE: QueueName = QueueName::SubUsageSync;
    const ACTION: &'static str = "add";
}

struct Adder;

impl Job for Adder {
    type Payload = Add;
    type State = Arc<AtomicU32>;

    async fn run(total: &Arc<AtomicU32>, job: Add, envelope: &Envelope) -> Result<(), JobError> {
        assert_eq!(envelope.action, "add");
        total.fetch_add(job.n, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_job_gets_its_payload_and_an_unreadable_one_fails_named() {
    let test = TestRedis::new();
    let redis = Redis::connect_lazy_to(test.url(), &test.prefix, Duration::from_secs(1), Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("{e}"));
    let queue = Queue::new(redis.clone(), QueueName::SubUsageSync);
    queue.enqueue(Add { n: 5 }.job("add-5"), None).await.unwrap_or_default();
    queue.enqueue(Add { n: 7 }.job("add-7"), None).await.unwrap_or_default();
    queue.enqueue(NewJob::new("add", "add-what", json!({"m": 1})), None).await.unwrap_or_default();
    let total = Arc::new(AtomicU32::new(0));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(billing_queue::worker::run(vec![consumer::<Adder>(&redis, total.clone())], async {
        let _ = stopped.await;
    }));
    poll_until(Duration::from_secs(10), "both readable jobs to run and the other to fail", || async {
        let failed = queue.stats().await.ok()?.failed;
        (total.load(Ordering::SeqCst) == 12 && failed == 1).then_some(())
    })
    .await;
    let failed = queue.failed_page(0, 10).await.unwrap_or_default();
    let error = failed[0].last_error.clone().unwrap_or_default();
    assert!(error.contains("the add job's payload is unreadable"), "{error}");
    assert_eq!(failed[0].attempts, 1, "a payload that cannot be read is not retried");
    let _ = stop.send(());
    let _ = worker.await;
}
