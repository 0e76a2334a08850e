//! `queuebench`: throughput of the Redis queues on one Redis, with a no-op handler.
//!
//! 1. enqueue: N jobs from C concurrent producers;
//! 2. claim + ack: C concurrent consumers calling the scripts directly until the queue is empty;
//! 3. worker: N jobs drained by the apalis worker runtime (concurrency C) with a no-op handler.
//!
//! Prints one Markdown table row per phase. Keys live under a fresh prefix and are deleted afterwards.

use std::sync::Arc;
use std::time::{Duration, Instant};

use billing_infra::Redis;
use billing_queue::worker::{self, Consumer};
use billing_queue::{NewJob, Policy, Queue};
use clap::Parser;
use serde_json::json;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value = "redis://127.0.0.1:56379/0")]
    redis: String,
    #[arg(long, default_value_t = 100_000)]
    jobs: usize,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

async fn enqueue_all(queue: &Arc<Queue>, jobs: usize, concurrency: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let per = jobs.div_ceil(concurrency);
    let producers = (0..concurrency).map(|p| {
        let queue = queue.clone();
        tokio::spawn(async move {
            for n in (p * per)..((p + 1) * per).min(jobs) {
                queue.enqueue(NewJob::new("noop", format!("bench-{n}"), json!({"n": n})), None).await?;
            }
            Ok::<_, billing_queue::QueueError>(())
        })
    });
    for r in futures_util::future::join_all(producers).await {
        r??;
    }
    Ok(started.elapsed())
}

fn row(phase: &str, jobs: usize, elapsed: Duration, concurrency: usize) {
    println!(
        "| {phase} | {jobs} | {concurrency} | {:.2} | {:.0} |",
        elapsed.as_secs_f64(),
        jobs as f64 / elapsed.as_secs_f64()
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let prefix = format!("bench:{}:", uuid::Uuid::new_v4().simple());
    let redis = Redis::connect_lazy_to(&args.redis, &prefix, Duration::from_secs(1), Duration::from_secs(10))?;
    let policy = Policy {
        max_attempts: 3,
        base_delay: Duration::from_secs(1),
        multiplier: 2.0,
        max_delay: Duration::from_secs(10),
        jitter: Duration::ZERO,
        visibility_timeout: Duration::from_secs(60),
    };
    let queue = Arc::new(Queue::with_policy(redis.clone(), "q:bench:noop", policy));
    println!("| phase | jobs | concurrency | seconds | jobs/s |");
    println!("|---|---|---|---|---|");

    let elapsed = enqueue_all(&queue, args.jobs, args.concurrency).await?;
    row("enqueue", args.jobs, elapsed, args.concurrency);

    let started = Instant::now();
    let consumers = (0..args.concurrency).map(|_| {
        let queue = queue.clone();
        tokio::spawn(async move {
            let mut n = 0_usize;
            while let Some(claimed) = queue.claim().await? {
                queue.ack(&claimed).await?;
                n += 1;
            }
            Ok::<_, billing_queue::QueueError>(n)
        })
    });
    let mut done = 0;
    for r in futures_util::future::join_all(consumers).await {
        done += r??;
    }
    anyhow::ensure!(done == args.jobs, "claimed {done} of {}", args.jobs);
    row("claim + ack", done, started.elapsed(), args.concurrency);

    enqueue_all(&queue, args.jobs, args.concurrency).await?;
    let noop: worker::Handler = Arc::new(|_| Box::pin(async { Ok(()) }));
    let consumer = Consumer { queue: (*queue).clone(), handler: noop, concurrency: args.concurrency };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let runner = tokio::spawn(worker::run(vec![consumer], async move {
        let _ = stopped.await;
    }));
    loop {
        let s = queue.stats().await?;
        if s.pending == 0 && s.processing == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    row("apalis worker, no-op handler", args.jobs, started.elapsed(), args.concurrency);
    let _ = stop.send(());
    let _ = runner.await;

    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut redis.conn()).await?;
    if !keys.is_empty() {
        redis::cmd("DEL").arg(keys).exec_async(&mut redis.conn()).await?;
    }
    Ok(())
}
