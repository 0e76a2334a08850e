//! Worker processes over the queues: crash redelivery, exactly-once processing by two processes, Redis outages,
//! and scheduler leases.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use billing_infra::Redis;
use billing_queue::scheduler::{self, Tick};
use billing_queue::{NewJob, Policy, Queue};
use billing_testkit::{RedisServer, TestRedis, poll_until};
use serde_json::json;

struct Probe(Child);

impl Probe {
    fn start(url: &str, prefix: &str, visibility_ms: u64) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_queue-probe"))
            .args([
                "--redis",
                url,
                "--prefix",
                prefix,
                "--visibility-ms",
                &visibility_ms.to_string(),
                "--concurrency",
                "16",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start queue-probe: {e}"));
        Self(child)
    }

    /// SIGKILL: no cleanup, no ack, no nack.
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    fn is_alive(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.kill();
    }
}

fn redis(url: &str, prefix: &str) -> Redis {
    Redis::connect_lazy_to(url, prefix, Duration::from_secs(1), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn probe_queue(redis: &Redis, visibility_ms: u64) -> Queue {
    // The probe's own policy: what the producer stamps on the envelope must match it.
    Queue::with_policy(redis.clone(), "q:test:probe", Policy::probe(Duration::from_millis(visibility_ms)))
}

async fn hget(redis: &Redis, hash: &str, field: &str) -> Option<u64> {
    redis::cmd("HGET").arg(redis.key(hash)).arg(field).query_async(&mut redis.conn()).await.ok().flatten()
}

async fn get(redis: &Redis, key: &str) -> u64 {
    redis::cmd("GET")
        .arg(redis.key(key))
        .query_async::<Option<u64>>(&mut redis.conn())
        .await
        .ok()
        .flatten()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_job_has_it_redelivered_after_the_visibility_timeout() {
    let test = TestRedis::new();
    let r = redis(test.url(), &test.prefix);
    let q = probe_queue(&r, 1000);
    let job = NewJob::new("probe", "crash-1", json!({"sleep_ms": 60_000, "sleep_attempt": 1}));
    let id = job.id.to_string();
    q.enqueue(job, None).await.unwrap_or_else(|e| panic!("{e}"));

    let mut first = Probe::start(test.url(), &test.prefix, 1000);
    poll_until(Duration::from_secs(20), "the first delivery", || async {
        (hget(&r, "probe:deliveries", &id).await == Some(1)).then_some(())
    })
    .await;
    first.kill();
    assert_eq!(q.stats().await.unwrap_or_default().processing, 1, "the job is still claimed by the dead worker");

    let _second = Probe::start(test.url(), &test.prefix, 1000);
    poll_until(Duration::from_secs(20), "the job to be redelivered and done", || async {
        (get(&r, "probe:effects").await == 1).then_some(())
    })
    .await;
    assert_eq!(hget(&r, "probe:attempts", &id).await, Some(2), "the attempt of the dead worker is counted");
    assert_eq!(hget(&r, "probe:deliveries", &id).await, Some(2));
    poll_until(Duration::from_secs(5), "the queue to drain", || async {
        (q.stats().await.unwrap_or_default() == Default::default()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_consume_10000_jobs_each_exactly_once() {
    let test = TestRedis::new();
    let r = redis(test.url(), &test.prefix);
    let q = probe_queue(&r, 30_000);
    let total = 10_000_u64;
    let jobs: Vec<NewJob> = (0..total).map(|n| NewJob::new("probe", format!("job-{n}"), json!({"n": n}))).collect();
    for chunk in jobs.chunks(1000) {
        futures_util::future::join_all(chunk.iter().map(|j| q.enqueue(j.clone(), None))).await;
    }
    assert_eq!(q.stats().await.unwrap_or_default().pending, total);
    let _a = Probe::start(test.url(), &test.prefix, 30_000);
    let _b = Probe::start(test.url(), &test.prefix, 30_000);
    poll_until(Duration::from_secs(120), "every job's effect", || async {
        (get(&r, "probe:effects").await == total).then_some(())
    })
    .await;
    let deliveries: Vec<u64> =
        redis::cmd("HVALS").arg(r.key("probe:deliveries")).query_async(&mut r.conn()).await.unwrap_or_default();
    assert_eq!(deliveries.len() as u64, total, "every job delivered");
    assert!(deliveries.iter().all(|d| *d == 1), "no job delivered twice");
    poll_until(Duration::from_secs(10), "the queue to drain", || async {
        (q.stats().await.unwrap_or_default() == Default::default()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_pauses_the_worker_and_it_resumes_by_itself() {
    let mut server = RedisServer::start();
    let r = redis(&server.url(), "");
    let q = probe_queue(&r, 5000);
    let mut probe = Probe::start(&server.url(), "", 5000);
    q.enqueue(NewJob::new("probe", "before", json!({})), None).await.unwrap_or_else(|e| panic!("{e}"));
    poll_until(Duration::from_secs(20), "the first job", || async {
        (get(&r, "probe:effects").await == 1).then_some(())
    })
    .await;

    server.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(probe.is_alive(), "a Redis outage must not kill the worker");
    server.restart();
    // The restarted Redis is empty (no persistence here): the worker picks up new work by itself.
    poll_until(Duration::from_secs(10), "Redis to accept jobs again", || async {
        q.enqueue(NewJob::new("probe", "after", json!({})), None).await.ok()
    })
    .await;
    poll_until(Duration::from_secs(20), "the job after the outage", || async {
        (get(&r, "probe:effects").await == 1).then_some(())
    })
    .await;
    assert!(probe.is_alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_never_run_the_same_tick_at_once() {
    let test = TestRedis::new();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let runs = Arc::new(AtomicUsize::new(0));
    let tick = {
        let (in_flight, overlaps, runs) = (in_flight.clone(), overlaps.clone(), runs.clone());
        Tick {
            name: "test:tick",
            every: Duration::from_millis(10),
            lease: Duration::from_secs(10),
            run: Arc::new(move || {
                let (in_flight, overlaps, runs) = (in_flight.clone(), overlaps.clone(), runs.clone());
                Box::pin(async move {
                    if in_flight.fetch_add(1, Ordering::SeqCst) > 0 {
                        overlaps.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    runs.fetch_add(1, Ordering::SeqCst);
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                })
            }),
        }
    };
    let a = tokio::spawn(scheduler::run(
        redis(test.url(), &test.prefix),
        "a-service",
        vec![tick.clone()],
        tokio::time::sleep(Duration::from_secs(2)),
    ));
    let b = tokio::spawn(scheduler::run(
        redis(test.url(), &test.prefix),
        "a-service",
        vec![tick],
        tokio::time::sleep(Duration::from_secs(2)),
    ));
    let _ = tokio::join!(a, b);
    assert!(runs.load(Ordering::SeqCst) >= 20, "the tick ran {} times", runs.load(Ordering::SeqCst));
    assert_eq!(overlaps.load(Ordering::SeqCst), 0, "two schedulers ran the tick at the same time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_services_run_their_ticks_of_the_same_name_side_by_side() {
    // Both services' workers have a `queues:maintain` tick over their own queues, on one Redis: a lease shared
    // across services lets one starve the other (the subscription worker's delayed jobs were never promoted while
    // the payment worker held the lease).
    let test = TestRedis::new();
    let counting = |runs: Arc<AtomicUsize>| Tick {
        name: "queues:maintain",
        every: Duration::from_millis(20),
        lease: Duration::from_secs(10),
        run: Arc::new(move || {
            let runs = runs.clone();
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(60)).await;
                runs.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
        }),
    };
    let (sub_runs, pay_runs) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let stop = || tokio::time::sleep(Duration::from_millis(1500));
    let sub = scheduler::run(
        redis(test.url(), &test.prefix),
        "subscription-service",
        vec![counting(sub_runs.clone())],
        stop(),
    );
    let pay =
        scheduler::run(redis(test.url(), &test.prefix), "payment-service", vec![counting(pay_runs.clone())], stop());
    tokio::join!(sub, pay);
    let (sub_runs, pay_runs) = (sub_runs.load(Ordering::SeqCst), pay_runs.load(Ordering::SeqCst));
    // Each tick takes 60 ms: alone, a scheduler runs it about 20 times in 1.5 s; sharing one lease, the two would
    // split those 20 runs between them.
    assert!(sub_runs >= 15 && pay_runs >= 15, "subscription ran {sub_runs}, payment ran {pay_runs}");
}
