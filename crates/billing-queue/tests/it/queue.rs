//! The queue machinery against a real Redis: delivery, retries on the policy's schedule, dead letters,
//! visibility timeouts, requeue, wake-ups and exactly-once claims under concurrency.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use billing_infra::Redis;
use billing_queue::{NackOutcome, NewJob, Policy, Queue};
use billing_testkit::{TestRedis, poll_until};
use serde_json::json;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn queue(test: &TestRedis, policy: Policy) -> Queue {
    let redis = Redis::connect_lazy_to(test.url(), &test.prefix, ms(1000), ms(2000)).unwrap_or_else(|e| panic!("{e}"));
    Queue::with_policy(redis, "q:test:jobs", policy)
}

fn fast(max_attempts: u32) -> Policy {
    Policy {
        max_attempts,
        base_delay: ms(200),
        multiplier: 2.0,
        max_delay: ms(10_000),
        jitter: ms(50),
        visibility_timeout: ms(30_000),
    }
}

fn job(n: u32) -> NewJob {
    NewJob::new("test", format!("key-{n}"), json!({"n": n}))
}

#[tokio::test]
async fn jobs_are_delivered_in_order_and_ack_removes_them() {
    let test = TestRedis::new();
    let q = queue(&test, fast(3));
    for n in 0..3 {
        assert!(q.enqueue(job(n), None).await.unwrap_or(false));
    }
    let stats = q.stats().await.unwrap_or_default();
    assert_eq!((stats.pending, stats.processing), (3, 0));
    for n in 0..3 {
        let claimed = q.claim().await.ok().flatten().unwrap_or_else(|| panic!("job {n} missing"));
        assert_eq!(claimed.envelope.payload["n"], n, "first in, first out");
        assert_eq!((claimed.envelope.attempts, claimed.envelope.max_attempts), (1, 3));
        assert_eq!(claimed.envelope.idempotency_key, format!("key-{n}"));
        assert!(q.ack(&claimed).await.unwrap_or(false));
        assert!(!q.ack(&claimed).await.unwrap_or(true), "a second ack finds nothing");
    }
    assert!(q.claim().await.ok().flatten().is_none());
    assert_eq!(q.stats().await.unwrap_or_default(), Default::default());
}

#[tokio::test]
async fn enqueueing_the_same_id_twice_stores_one_job() {
    let test = TestRedis::new();
    let q = queue(&test, fast(3));
    let j = job(1);
    assert!(q.enqueue(j.clone(), None).await.unwrap_or(false));
    assert!(!q.enqueue(j, None).await.unwrap_or(true));
    assert_eq!(q.stats().await.unwrap_or_default().pending, 1);
}

#[tokio::test]
async fn a_failing_job_is_retried_on_the_policy_schedule_then_dead_lettered_with_its_last_error() {
    let test = TestRedis::new();
    let q = queue(&test, fast(3));
    q.enqueue(job(7), None).await.unwrap_or_default();
    let mut expected_backoff = 200;
    for attempt in 1..=3_u32 {
        let claimed = poll_until(ms(5000), "the retry to become due", || async {
            q.promote().await.ok();
            q.claim().await.ok().flatten()
        })
        .await;
        assert_eq!(claimed.envelope.attempts, attempt);
        let nacked_at = Instant::now();
        let outcome = q.nack(&claimed, &format!("boom {attempt}"), false).await.unwrap_or(NackOutcome::NotHeld);
        if attempt < 3 {
            let NackOutcome::Retry(delay) = outcome else { panic!("attempt {attempt}: {outcome:?}") };
            assert!(
                delay >= ms(expected_backoff) && delay <= ms(expected_backoff + 50),
                "attempt {attempt}: {delay:?}"
            );
            // Not promoted before it is due.
            assert_eq!(q.promote().await.unwrap_or(99), 0);
            assert_eq!(q.stats().await.unwrap_or_default().delayed, 1);
            poll_until(ms(5000), "promotion", || async { (q.promote().await.unwrap_or(0) == 1).then_some(()) }).await;
            assert!(nacked_at.elapsed() >= ms(expected_backoff), "promoted early after {:?}", nacked_at.elapsed());
            expected_backoff *= 2;
        } else {
            assert_eq!(outcome, NackOutcome::Failed);
        }
    }
    let stats = q.stats().await.unwrap_or_default();
    assert_eq!((stats.pending, stats.delayed, stats.processing, stats.failed), (0, 0, 0, 1));
    let failed = q.failed_page(0, 10).await.unwrap_or_default();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].attempts, 3);
    assert_eq!(failed[0].last_error.as_deref(), Some("boom 3"));
    assert_eq!(failed[0].envelope.as_ref().map(|e| e.payload["n"].clone()), Some(json!(7)));
}

#[tokio::test]
async fn a_permanent_error_goes_straight_to_failed() {
    let test = TestRedis::new();
    let q = queue(&test, fast(5));
    q.enqueue(job(1), None).await.unwrap_or_default();
    let claimed = q.claim().await.ok().flatten().unwrap_or_else(|| panic!("no job"));
    assert_eq!(q.nack(&claimed, "not implemented", true).await.unwrap_or(NackOutcome::NotHeld), NackOutcome::Failed);
    let failed = q.failed_page(0, 10).await.unwrap_or_default();
    assert_eq!((failed[0].attempts, failed[0].last_error.as_deref()), (1, Some("not implemented")));
}

#[tokio::test]
async fn a_claim_past_its_visibility_timeout_is_redelivered_with_attempts_counted() {
    let test = TestRedis::new();
    let q = queue(&test, Policy { visibility_timeout: ms(150), ..fast(2) });
    q.enqueue(job(1), None).await.unwrap_or_default();
    let first = q.claim().await.ok().flatten().unwrap_or_else(|| panic!("no job"));
    assert_eq!(q.reap().await.unwrap_or((9, 9)), (0, 0), "not expired yet");
    // The worker "dies": no ack. After the timeout the job comes back.
    poll_until(ms(5000), "the reaper to return the job", || async {
        (q.reap().await.unwrap_or((0, 0)) == (1, 0)).then_some(())
    })
    .await;
    let second = q.claim().await.ok().flatten().unwrap_or_else(|| panic!("not redelivered"));
    assert_eq!(second.envelope.id, first.envelope.id);
    assert_eq!(second.envelope.attempts, 2);
    // The first holder is a zombie now: its ack or nack must not touch the new claim.
    assert!(!q.ack(&first).await.unwrap_or(true));
    assert_eq!(q.nack(&first, "late", false).await.unwrap_or(NackOutcome::Failed), NackOutcome::NotHeld);
    assert_eq!(q.stats().await.unwrap_or_default().processing, 1);
    // The last attempt also times out: failed, with the reason.
    poll_until(ms(5000), "the reaper to fail the job", || async {
        (q.reap().await.unwrap_or((0, 0)) == (0, 1)).then_some(())
    })
    .await;
    let failed = q.failed_page(0, 1).await.unwrap_or_default();
    assert!(failed[0].last_error.as_deref().is_some_and(|e| e.contains("visibility timeout")), "{failed:?}");
}

#[tokio::test]
async fn a_requeued_failed_job_runs_again_and_a_dropped_one_is_gone() {
    let test = TestRedis::new();
    let q = queue(&test, fast(1));
    for n in 0..2 {
        q.enqueue(job(n), None).await.unwrap_or_default();
        let claimed = q.claim().await.ok().flatten().unwrap_or_else(|| panic!("no job"));
        q.nack(&claimed, "bad", false).await.unwrap_or(NackOutcome::NotHeld);
    }
    let failed = q.failed_page(0, 10).await.unwrap_or_default();
    assert_eq!(failed.len(), 2);
    let (requeue, drop) = (failed[0].id.clone(), failed[1].id.clone());
    assert!(q.requeue_failed(&requeue).await.unwrap_or(false));
    assert!(!q.requeue_failed(&requeue).await.unwrap_or(true), "no longer failed");
    let again = q.claim().await.ok().flatten().unwrap_or_else(|| panic!("requeued job missing"));
    assert_eq!((again.envelope.id.to_string(), again.envelope.attempts), (requeue, 1));
    assert!(q.ack(&again).await.unwrap_or(false));
    assert!(q.drop_failed(&drop).await.unwrap_or(false));
    assert_eq!(q.stats().await.unwrap_or_default(), Default::default());
}

#[tokio::test]
async fn delayed_jobs_wait_their_turn() {
    let test = TestRedis::new();
    let q = queue(&test, fast(3));
    q.enqueue(job(1), Some(ms(300))).await.unwrap_or_default();
    assert!(q.claim().await.ok().flatten().is_none());
    let started = Instant::now();
    poll_until(ms(5000), "the delayed job", || async { (q.promote().await.unwrap_or(0) == 1).then_some(()) }).await;
    assert!(started.elapsed() >= ms(250));
    assert!(q.claim().await.ok().flatten().is_some());
}

#[tokio::test]
async fn an_idle_worker_wakes_when_work_arrives() {
    let test = TestRedis::new();
    let q = Arc::new(queue(&test, fast(3)));
    let redis = Redis::connect_lazy_to(test.url(), &test.prefix, ms(1000), ms(2000)).unwrap_or_else(|e| panic!("{e}"));
    let mut conn = redis.dedicated().await.unwrap_or_else(|e| panic!("{e}"));
    let waiter = {
        let q = q.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let woke = q.wait_for_work(&mut conn, Duration::from_secs(10)).await.unwrap_or(false);
            (woke, started.elapsed())
        })
    };
    tokio::time::sleep(ms(200)).await;
    q.enqueue(job(1), None).await.unwrap_or_default();
    let (woke, waited) = waiter.await.unwrap_or((false, Duration::MAX));
    assert!(woke && waited < Duration::from_secs(1), "{woke} after {waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_consumers_claim_each_job_exactly_once() {
    let test = TestRedis::new();
    let q = Arc::new(queue(&test, fast(3)));
    let total = 4000_u32;
    for chunk in (0..total).collect::<Vec<_>>().chunks(500) {
        futures_util::future::join_all(chunk.iter().map(|n| q.enqueue(job(*n), None))).await;
    }
    let consumers = (0..4).map(|_| {
        let q = q.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Ok(Some(claimed)) = q.claim().await {
                seen.push(claimed.envelope.payload["n"].as_u64().unwrap_or(u64::MAX));
                assert!(q.ack(&claimed).await.unwrap_or(false));
            }
            seen
        })
    });
    let mut all = Vec::new();
    for c in futures_util::future::join_all(consumers).await {
        all.extend(c.unwrap_or_default());
    }
    let unique: HashSet<u64> = all.iter().copied().collect();
    assert_eq!((all.len(), unique.len()), (total as usize, total as usize), "no loss, no duplicate");
    assert_eq!(q.stats().await.unwrap_or_default(), Default::default());
}

#[tokio::test]
async fn a_released_claim_is_next_in_line_and_its_attempt_is_not_counted() {
    let test = TestRedis::new();
    let q = queue(&test, fast(3));
    for n in 0..3 {
        q.enqueue(job(n), None).await.unwrap_or_default();
    }
    let batch = q.claim_batch(2).await.unwrap_or_default();
    assert_eq!(batch.iter().map(|c| c.envelope.payload["n"].as_u64()).collect::<Vec<_>>(), [Some(0), Some(1)]);
    assert!(q.release(&batch[1]).await.unwrap_or(false));
    assert!(!q.release(&batch[1]).await.unwrap_or(true), "released once");
    let stats = q.stats().await.unwrap_or_default();
    assert_eq!((stats.pending, stats.processing), (2, 1));
    let next = q.claim().await.ok().flatten().unwrap_or_else(|| panic!("no job"));
    assert_eq!(
        (next.envelope.payload["n"].as_u64(), next.envelope.attempts),
        (Some(1), 1),
        "first again, attempt not counted"
    );
}
