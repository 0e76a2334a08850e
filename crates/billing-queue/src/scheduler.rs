//! Periodic ticks under a Redis lease: any number of worker replicas may run the scheduler, and a tick runs in
//! at most one of them at a time. A lease belongs to a scope (the service): both services' workers share one
//! Redis and have ticks of the same name over different work (each maintains its own queues, relays its own
//! outbox), so one service's ticks must never wait on the other's.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use billing_infra::Redis;
use redis::Script;

/// What a tick runs.
pub type TickFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A periodic task.
#[derive(Clone)]
pub struct Tick {
    pub name: &'static str,
    pub every: Duration,
    /// How long the lease holds if its holder dies mid-tick; longer than the tick ever takes.
    pub lease: Duration,
    pub run: Arc<dyn Fn() -> TickFuture + Send + Sync>,
}

impl std::fmt::Debug for Tick {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tick").field("name", &self.name).field("every", &self.every).finish_non_exhaustive()
    }
}

// Delete the lease only if we still hold it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Runs one tick under its lease in `scope`; returns false when another process holds it.
pub async fn run_once(redis: &Redis, scope: &str, owner: &str, tick: &Tick) -> Result<bool, redis::RedisError> {
    let key = redis.key(&format!("lease:{scope}:{}", tick.name));
    let mut conn = redis.conn();
    let acquired: Option<String> = redis::cmd("SET")
        .arg(&key)
        .arg(owner)
        .arg("NX")
        .arg("PX")
        .arg(u64::try_from(tick.lease.as_millis()).unwrap_or(u64::MAX))
        .query_async(&mut conn)
        .await?;
    if acquired.is_none() {
        return Ok(false);
    }
    if let Err(err) = (tick.run)().await {
        tracing::warn!(tick = tick.name, error = %err, "scheduler tick failed");
    }
    let _: i64 = Script::new(RELEASE).key(&key).arg(owner).invoke_async(&mut conn).await?;
    Ok(true)
}

/// Runs every tick on its period, under leases of `scope` (the service's name), until `shutdown` resolves.
pub async fn run(redis: Redis, scope: &str, ticks: Vec<Tick>, shutdown: impl Future<Output = ()> + Send) {
    let owner = uuid::Uuid::new_v4().to_string();
    let loops = ticks.into_iter().map(|tick| {
        let (redis, owner) = (redis.clone(), owner.clone());
        async move {
            let mut interval = tokio::time::interval(tick.every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                if let Err(err) = run_once(&redis, scope, &owner, &tick).await {
                    tracing::warn!(tick = tick.name, error = %err, "scheduler cannot reach Redis; will retry");
                }
            }
        }
    });
    tokio::select! {
        _ = futures_util::future::join_all(loops) => {}
        () = shutdown => {}
    }
}

/// The tick every worker runs for its queues: promote due delayed jobs and reap expired claims.
pub fn queue_ticks(queues: Vec<crate::Queue>) -> Vec<Tick> {
    let queues = Arc::new(queues);
    vec![Tick {
        name: "queues:maintain",
        every: Duration::from_millis(500),
        lease: Duration::from_secs(30),
        run: Arc::new(move || {
            let queues = queues.clone();
            Box::pin(async move {
                for queue in queues.iter() {
                    queue.promote().await.map_err(|e| e.to_string())?;
                    let (returned, failed) = queue.reap().await.map_err(|e| e.to_string())?;
                    if returned + failed > 0 {
                        tracing::warn!(
                            queue = queue.name(),
                            returned,
                            failed,
                            "claims past their visibility timeout reaped"
                        );
                    }
                }
                Ok(())
            })
        }),
    }]
}
